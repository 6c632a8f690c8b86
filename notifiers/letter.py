"""Letters: a print-ready PDF per person, handed to a mailing vendor in batches.

A batch becomes one folder ``<directory>/<batch id>/`` holding one PDF per letter and a
``manifest.csv`` the vendor reconciles against. The sandbox twin and the live hand-over
are the same class: the sandbox writes to ``.breach/outbox/letter``, the live one to the
vendor's drop folder (e.g. an SFTP-synced mount). A letter is ``sent`` once its folder is
in place: the vendor's later printing and posting is outside what we can observe.

The folder is assembled under a hidden ``.<batch id>.partial`` name and renamed into place,
so the vendor never picks up half a batch. The batch id depends only on the batch's
message ids (plus the date of the first hand-over), so a re-handover after a crash
rewrites the same folder instead of mailing everyone twice (``dropfolder.py``).

Above ``BREACH_LETTER_VENDOR_THRESHOLD`` letters an incident's letters go to the vendor as
an encrypted merge hand-over instead (``letter_vendor.py``).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.dropfolder import DropFolder, batch_date, write_private
from breachflow.rendering.merge import letter_date
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
        return letter_date(self.letter_date, locale)


class LetterNotifier:
    """Renders each letter to PDF and hands the batch over as one folder with a manifest."""

    def __init__(self, directory: Path, *, organisation: str, name: str = "letter") -> None:
        self.directory = directory
        self.organisation = organisation
        self.name = name
        self.folder = DropFolder(directory)

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
            batch_id = self.folder.batch_id("L", (msg.message_id for msg in batch))
            with self.folder.staging(batch_id) as staging:
                letters, unprintable = self._print(printable, staging, batch_id)
                if letters:
                    write_private(staging / "manifest.csv", manifest(letters))
                    self.folder.publish(staging, batch_id)
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
        renderer = _Renderer(self.organisation, batch_date(batch_id))
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
            write_private(staging / file, pdf)
            letters.append(_Letter(msg, file, pages, hashlib.sha256(pdf).hexdigest()))
        return letters, unprintable


def address_lines(address: str) -> list[str]:
    """The non-blank lines of a postal address, stripped."""
    return [line.strip() for line in address.splitlines() if line.strip()]


def address_columns(address: str) -> list[str]:
    """An address (of two lines or more) in ``ADDRESS_LINES`` street columns and the last
    line (usually the country); lines beyond the columns share the last street column."""
    *street, last = address_lines(address)
    if len(street) > ADDRESS_LINES:  # keep every line: the overflow shares the last column
        street[ADDRESS_LINES - 1 :] = [", ".join(street[ADDRESS_LINES - 1 :])]
    return [*street, *[""] * (ADDRESS_LINES - len(street)), last]


def manifest(letters: list[_Letter]) -> bytes:
    """The vendor's CSV: UTF-8 with a BOM so Excel shows Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MANIFEST_COLUMNS)
    for sequence, letter in enumerate(letters, start=1):
        row = [
            str(sequence),
            letter.msg.message_id,
            letter.file,
            letter.msg.recipient_name or "",
            *address_columns(letter.msg.recipient),
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


def _result(msg: OutboundMessage, status: DeliveryStatus, detail: str) -> DeliveryResult:
    return DeliveryResult(notification_id=msg.notification_id, status=status, detail=detail)
