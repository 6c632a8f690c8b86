"""Breachflow: breach-incident response workflows.

The repository's top-level folders (``models/``, ``flows/``, ``notifiers/`` ...) are this
package's subpackages (``breachflow.models`` ...), mapped by setuptools' ``package-dir``.
Templates, runbooks, rules and examples ship inside it as package data.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

try:
    __version__ = version("breachflow")
except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"


def shipped(name: str) -> Path:
    """A folder of data shipped inside the package: ``templates``, ``runbooks``, ``rules``,
    ``examples``. A real directory: the package is installed unzipped (wheel or editable)."""
    return Path(str(files(__name__).joinpath(name)))
