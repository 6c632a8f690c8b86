"""The Jinja environment every template of ours renders in: notices, pages, reports.

Templates are data an operator may edit, so they run in Jinja's immutable sandbox with
``StrictUndefined`` (a misspelt field is an error, not an empty paragraph) and HTML
autoescaping, so nothing an incident's text contains can become markup. They ship inside
the package (``breachflow/templates``), so an installed Breachflow finds them anywhere.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from breachflow import shipped

TEMPLATES = shipped("templates")


@cache
def environment(root: Path = TEMPLATES) -> ImmutableSandboxedEnvironment:
    """Templates are read once per process (no ``auto_reload``): checking every file's
    mtime for every notice cost more than rendering it. Restart to pick up an edit."""
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(root),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith((".html.j2", ".xml.j2"))),
        keep_trailing_newline=True,
        auto_reload=False,
    )
