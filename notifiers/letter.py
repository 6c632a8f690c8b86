"""Letters: a print-ready PDF per person, handed to a mailing vendor in batches.

A batch becomes one folder ``<directory>/<batch id>/`` holding one PDF per letter and a
``manifest.csv`` the vendor reconciles against. The sandbox twin and the live hand-over
are the same class: the sandbox writes to ``.breach/outbox/letter``, the live one to the
vendor's drop folder (e.g. an SFTP-synced mount). A letter is ``sent`` once its folder is
in place: the vendor's later printing and posting is outside what we can observe.

The folder is assembled under a hidden ``.<batch id>.partial`` name and renamed into place,
so the vendor never picks up half a batch. The batch id depends only on the batch's
message ids (plus the date of the first hand-over), so a re-handover after a crash
rewrites the same folder instead of mailing everyone twice.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.rendering.pdf import PdfRenderer

ADDRESS_LINES = 5  # address_line_1..5, then country_or_last_line
MANIFEST_COLUMNS = (
    "sequence",
    "reference",
    "file",
    "recipient_name",
    *(f"address_line_{i}" for i in range(1, ADDRESS_LINES + 1)),
    "country_or_last_line",
    "locale",
    "pages",
    "sha256",
)
NO_ADDRESS = "no usable postal address"


@dataclass(frozen=True)
class _Letter:
    msg: OutboundMessage
    file: str
    pages: int
    sha256: str


class _Renderer:
    """Letters of one batch, all dated with the batch's hand-over date."""

    def __init__(self, organisation: str, letter_date: date) -> None:
        self.organisation = organisation
        self.letter_date = letter_date
        self.pages = PdfRenderer()

    def cover(self, printable: list[tuple[OutboundMessage, str]]) -> None:
        """Cut the font once for the whole batch: every page and every date line in it."""
        dates = {self._date(msg.locale) for msg, _ in printable}
        self.pages.cover(*(html for _, html in printable), *dates)

    def pdf(self, msg: OutboundMessage, html: str) -> tuple[bytes, int]:
        dated = f'.letter-date::after {{ content: "{self._date(msg.locale)}" }}'
        document = self.pages.document(html, dated)
        document.metadata.title = msg.subject
        document.metadata.authors = [self.organisation]
        return document.write_pdf(), len(document.pages)

    def _date(self, locale: str) -> str:
        day = self.letter_date
        if locale.split("-")[0].lower() == "zh":
            return f"{day.year}年{day.month}月{day.day}日"
        return f"{day.day} {day:%B %Y}"


class LetterNotifier:
    """Renders each letter to PDF and hands the batch over as one folder with a manifest."""

    def __init__(self, directory: Path, *, organisation: str, name: str = "letter") -> None:
        self.directory = directory
        self.organisation = organisation
        self.name = name

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        return await asyncio.to_thread(self._hand_over, batch)

    def _hand_over(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        printable: list[tuple[OutboundMessage, str]] = []
        for msg in batch:
            if len(address_lines(msg.recipient)) < 2:
                results.append(_result(msg, DeliveryStatus.FAILED_PERMANENT, NO_ADDRESS))
            elif not msg.html:
                results.append(_result(msg, DeliveryStatus.FAILED_PERMANENT, "no printable page"))
            else:
                printable.append((msg, msg.html))
        if not printable:
            return results
        try:
            batch_id = self._batch_id(batch)
            with self._staging(batch_id) as staging:
                letters, unprintable = self._print(printable, staging, batch_id)
                if letters:
                    _write_private(staging / "manifest.csv", manifest(letters))
                    self._publish(staging, self.directory / batch_id)
        except OSError as exc:  # nothing was handed over: try the whole batch again later
            reason = f"letter folder not writable: {exc.strerror or type(exc).__name__}"
            return results + [_result(msg, DeliveryStatus.DEFERRED, reason) for msg, _ in printable]
        sent = [
            DeliveryResult(
                notification_id=letter.msg.notification_id,
                status=DeliveryStatus.SENT,
                provider_message_id=batch_id,
            )
            for letter in letters
        ]
        return results + unprintable + sent

    def _print(
        self, printable: list[tuple[OutboundMessage, str]], staging: Path, batch_id: str
    ) -> tuple[list[_Letter], list[DeliveryResult]]:
        """Render and write each PDF; a page that fails to render fails only its person."""
        renderer = _Renderer(self.organisation, _batch_date(batch_id))
        renderer.cover(printable)
        letters: list[_Letter] = []
        unprintable: list[DeliveryResult] = []
        files: set[str] = set()
        for msg, html in printable:
            try:
                pdf, pages = renderer.pdf(msg, html)
            except Exception as exc:  # WeasyPrint raises many kinds; none may sink the batch
                detail = f"letter page could not be rendered ({type(exc).__name__})"
                unprintable.append(_result(msg, DeliveryStatus.FAILED_PERMANENT, detail))
                continue
            file = _file_name(msg.message_id, files)
            files.add(file)
            _write_private(staging / file, pdf)
            letters.append(_Letter(msg, file, pages, hashlib.sha256(pdf).hexdigest()))
        return letters, unprintable

    def _batch_id(self, batch: list[OutboundMessage]) -> str:
        """``L<date>-<hash of the message ids>``; the date of an earlier hand-over is kept."""
        ids = "\n".join(sorted({msg.message_id for msg in batch}))
        digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        earlier = sorted(
            p.name for p in self.directory.glob(f"L{'[0-9]' * 8}-{digest}") if p.is_dir()
        )
        return earlier[-1] if earlier else f"L{datetime.now(UTC):%Y%m%d}-{digest}"

    @contextmanager
    def _staging(self, batch_id: str) -> Iterator[Path]:
        """A fresh private folder that is gone afterwards unless it was published."""
        staging = self.directory / f".{batch_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)  # left by a crashed attempt
        staging.mkdir(mode=0o700)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _publish(self, staging: Path, target: Path) -> None:
        """Rename the complete folder into place, replacing an earlier attempt's."""
        _fsync(staging)
        if target.exists():
            aside = self.directory / f".{target.name}.old"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(target, aside)
            os.replace(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, target)
        _fsync(self.directory)


def address_lines(address: str) -> list[str]:
    """The non-blank lines of a postal address, stripped."""
    return [line.strip() for line in address.splitlines() if line.strip()]


def manifest(letters: list[_Letter]) -> bytes:
    """The vendor's CSV: UTF-8 with a BOM so Excel shows Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_COLUMNS)
    for sequence, letter in enumerate(letters, start=1):
        *street, last = address_lines(letter.msg.recipient)
        if len(street) > ADDRESS_LINES:  # keep every line: the overflow shares the last column
            street[ADDRESS_LINES - 1 :] = [", ".join(street[ADDRESS_LINES - 1 :])]
        street += [""] * (ADDRESS_LINES - len(street))
        row = [
            str(sequence),
            letter.msg.message_id,
            letter.file,
            letter.msg.recipient_name or "",
            *street,
            last,
            letter.msg.locale,
            str(letter.pages),
            letter.sha256,
        ]
        writer.writerow([_inert(cell) for cell in row])
    return out.getvalue().encode("utf-8-sig")


def _inert(cell: str) -> str:
    """Keep a spreadsheet from running a name like ``=HYPERLINK(...)`` as a formula."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _file_name(message_id: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<>")).lstrip(".") or "letter"
    name, n = f"{stem}.pdf", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.pdf"
    return name


def _batch_date(batch_id: str) -> date:
    return datetime.strptime(batch_id[1:9], "%Y%m%d").replace(tzinfo=UTC).date()


def _write_private(path: Path, content: bytes) -> None:
    """Write a file only its owner can read (names and addresses) and flush it to disk."""
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


def _result(msg: OutboundMessage, status: DeliveryStatus, detail: str) -> DeliveryResult:
    return DeliveryResult(notification_id=msg.notification_id, status=status, detail=detail)
