"""A mailing vendor's drop folder: each hand-over appears whole, once, under a stable name.

Both ways letters leave us, a PDF per person (``letter.py``) and the vendor's merge
hand-over (``letter_vendor.py``), hand a batch over as one folder ``<directory>/<id>/``:

- assembled under a hidden ``.<id>.partial`` name (vendors' pick-ups skip dot-files) and
  renamed into place, so the vendor never collects half a batch;
- every file private to its owner (0600, folders 0700) and flushed to disk before the
  rename, the rename itself flushed too, so a crash leaves the old folder or the new one;
- the id depends only on the batch's message ids (plus the date of the first hand-over,
  which a later attempt keeps), so a re-handover after a crash rewrites the same folder
  instead of mailing everyone twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path


class DropFolder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def batch_id(self, prefix: str, message_ids: Iterable[str]) -> str:
        """``<prefix><date>-<hash of the message ids>``; the date of an earlier hand-over of
        the same messages is kept."""
        ids = "\n".join(sorted(set(message_ids)))
        digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        earlier = sorted(
            p.name for p in self.directory.glob(f"{prefix}{'[0-9]' * 8}-{digest}") if p.is_dir()
        )
        return earlier[-1] if earlier else f"{prefix}{datetime.now(UTC):%Y%m%d}-{digest}"

    @contextmanager
    def staging(self, batch_id: str) -> Iterator[Path]:
        """A fresh private folder that is gone afterwards unless it was published."""
        staging = self.directory / f".{batch_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crashed attempt
        staging.mkdir(mode=0o700)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish(self, staging: Path, batch_id: str) -> Path:
        """Rename the complete folder into place, replacing an earlier attempt's."""
        target = self.directory / batch_id
        _fsync(staging)
        if target.exists():
            aside = self.directory / f".{batch_id}.old"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(target, aside)
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
        _fsync(self.directory)
        return target


def batch_date(batch_id: str) -> date:
    """The (UTC) day a batch was first handed over, from its id."""
    return datetime.strptime(batch_id[1:9], "%Y%m%d").replace(tzinfo=UTC).date()


def write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def _fsync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
