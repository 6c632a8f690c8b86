"""Files other programs read while we write them: reports, site pages, feeds."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(target: Path, data: bytes | str) -> None:
    """Write beside the target, flush, and rename over it: a reader sees old or new."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    with open(temporary, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)


def private_directory(path: Path) -> None:
    """Create ``path``, and each missing folder above it, so only its owner can enter them
    (0700): what is inside holds people's contact details."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def write_private(target: Path, data: bytes) -> None:
    """Write ``target`` atomically (beside it, then renamed) readable by its owner only."""
    temporary = target.with_name(f".{target.name}.partial")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a partial file left by a crash keeps no wider mode
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
