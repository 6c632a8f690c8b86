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
