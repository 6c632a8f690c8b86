"""The mailing vendor's return file: which letters were posted, and which came back.

``breach letters returns INC FILE`` imports it. A CSV (UTF-8, with or without a BOM; the
delimiter, ``,`` ``;`` tab or ``|``, is detected) whose header names at least
``reference``, ``status`` and ``date``, and optionally ``reason``; other columns are
ignored (vendors add their own). One row per letter:

- ``reference``: the letter's reference from the hand-over's merge file;
- ``status``: ``mailed`` (posted that day: the letter is ``sent`` and its person reached,
  from that date) or ``undeliverable`` (the vendor could not post it, or the post brought
  it back: the person moves to their next channel, or is left unreachable with the reason);
- ``date``: the day, ``YYYY-MM-DD``, as the vendor writes it, in its own time zone: a date
  is refused only if no time zone makes it possible (after today anywhere on earth, or
  before the day the letter was handed over), as a time that could not have happened;
- ``reason``: why it came back (``addressee unknown``), kept with the person's record.

Every line is accounted for: applied, unchanged (the ledger already says so: importing a
file twice changes nothing), or an error with its line number and what is wrong (unknown
reference, bad status, bad date, a letter the ledger knows otherwise). The good lines land
in one transaction with one timeline event of counts; nothing a line holds is quoted back,
and a reason that repeats the person's own name or address is withheld, so no contact
detail reaches an error, the ledger's reasons or the timeline.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.flows.notify.dispatch import usable_chain
from breachflow.models import ledger
from breachflow.models.base import utcnow
from breachflow.models.commands import get_incident
from breachflow.models.crypto import Vault
from breachflow.models.delivery import Channel
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.notification import Notification
from breachflow.models.runtime import database, settings, vault
from breachflow.models.timeline import EventKind, record
from breachflow.notifiers.dropfolder import batch_date
from breachflow.notifiers.letter_vendor import RETURN_COLUMNS, RETURN_STATUSES

REQUIRED = RETURN_COLUMNS[:3]  # reference, status, date; reason is optional
REASON_LENGTH = 200
LOOKUP_CHUNK = 5000  # references looked up per query
SHOWN_ERRORS = 20  # errors listed on the timeline (all are counted)
#: Time zones run from UTC-12 to UTC+14: the bounds of a date written anywhere.
AHEAD, BEHIND = timedelta(hours=14), timedelta(days=1)


@dataclass(frozen=True)
class ReturnLine:
    line: int
    reference: str
    status: str
    day: date
    reason: str


@dataclass
class ReturnsReport:
    """What an import did: counts per outcome (``mailed``, ``fell_back``, ``unreachable``,
    ``unchanged``), the errors by line, and the letters still with the vendor."""

    file: str
    sha256: str
    lines: int = 0
    outcome: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)
    with_vendor: int = 0

    @property
    def undeliverable(self) -> int:
        return self.outcome["fell_back"] + self.outcome["unreachable"]

    @property
    def used(self) -> int:
        return self.lines - len(self.errors)


def import_returns(incident_key: str, path: Path, actor: str) -> ReturnsReport:
    """Read ``path`` and apply every good line to the incident's letters in one transaction."""
    if not path.is_file():
        raise InvalidInput(f"no such return file: {path}")
    raw = path.read_bytes()
    report = ReturnsReport(file=path.name, sha256=hashlib.sha256(raw).hexdigest())
    lines = _parse(raw, report)
    keys = vault()  # before the transaction: it checks the key in one of its own
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        rows = _letters(session, incident, {line.reference for line in lines})
        _apply(session, incident, lines, rows, keys, report)
        report.errors.sort()
        report.with_vendor, _ = ledger.with_vendor(session, incident)
        record(
            session,
            incident,
            EventKind.LETTER_RETURNS_IMPORTED,
            actor,
            {
                "file": report.file,
                "sha256": report.sha256,
                "lines": report.lines,
                "mailed": report.outcome["mailed"],
                "undeliverable": report.undeliverable,
                "fell_back": report.outcome["fell_back"],
                "unreachable": report.outcome["unreachable"],
                "unchanged": report.outcome["unchanged"],
                "errors": len(report.errors),
                "first_errors": [
                    {"line": n, "error": error} for n, error in report.errors[:SHOWN_ERRORS]
                ],
                "with_vendor": report.with_vendor,
            },
        )
    return report


def _parse(raw: bytes, report: ReturnsReport) -> list[ReturnLine]:
    """The file's lines, checked one by one; bad ones become errors on ``report``."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the return file is not UTF-8 text") from None
    header = text.splitlines()[0] if text.strip() else ""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(header, ",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    columns = [name.strip().lower() for name in next(reader, [])]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise InvalidInput(
            f"the return file's header must name {', '.join(REQUIRED)} (and may name"
            f" reason); missing: {', '.join(missing)}"
        )
    at = {name: columns.index(name) for name in RETURN_COLUMNS if name in columns}
    lines = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        report.lines += 1
        parsed = _line(reader.line_num, cells, at)
        if isinstance(parsed, ReturnLine):
            lines.append(parsed)
        else:
            report.errors.append((reader.line_num, parsed))
    return lines


def _line(number: int, cells: list[str], at: dict[str, int]) -> ReturnLine | str:
    """One line, or what is wrong with it (never quoting it: a cell may be anything)."""

    def cell(name: str) -> str:
        index = at.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    reference, status = cell("reference"), cell("status").lower()
    if not reference:
        return "no reference"
    if status not in RETURN_STATUSES:
        return f"status must be {' or '.join(RETURN_STATUSES)}"
    try:
        day = date.fromisoformat(cell("date")[:10])
    except ValueError:
        return "date is not a date (YYYY-MM-DD)"
    reason = " ".join(cell("reason").split())[:REASON_LENGTH]
    return ReturnLine(number, reference, status, day, reason)


def _letters(session: Session, incident: Incident, references: set[str]) -> dict[str, Notification]:
    """The incident's letters the file names, by reference (the row's message id)."""
    found: dict[str, Notification] = {}
    wanted = sorted(references)
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        for row in session.scalars(
            select(Notification)
            .where(
                Notification.incident_id == incident.id,
                Notification.channel == Channel.LETTER,
                Notification.idempotency_key.in_(chunk),
            )
            .with_for_update(of=Notification)
        ):
            found[row.idempotency_key] = row
    return found


def _apply(
    session: Session,
    incident: Incident,
    lines: list[ReturnLine],
    rows: dict[str, Notification],
    keys: Vault,
    report: ReturnsReport,
) -> None:
    now = utcnow()
    chain: list[Channel] | None = None
    for line in lines:
        row = rows.get(line.reference)
        if row is None:
            report.errors.append((line.line, f"unknown reference: no letter of {incident.key}"))
            continue
        impossible = _impossible(line.day, row, now)
        if impossible:
            report.errors.append((line.line, impossible))
            continue
        try:
            if line.status == "mailed":
                mailed_at = min(datetime.combine(line.day, datetime.min.time(), UTC), now)
                outcome = ledger.vendor_mailed(row, mailed_at)
            else:
                if chain is None:
                    chain, _ = usable_chain(session, incident, settings())
                reason = _screened(line.reason, row, keys) or "no reason given"
                outcome = ledger.vendor_returned(session, row, line.day, reason, chain)
        except InvalidInput as exc:
            report.errors.append((line.line, str(exc)))
            continue
        report.outcome[outcome] += 1


def _impossible(day: date, row: Notification, now: datetime) -> str | None:
    """Why ``day`` cannot be when this letter was posted or came back, or None."""
    if day > (now + AHEAD).date():
        return "date is in the future"
    try:
        handed = batch_date(row.provider_message_id or "")
    except ValueError:  # never handed over: the ledger says so
        return None
    if day < handed - BEHIND:
        return f"date is before the letter was handed over ({handed})"
    return None


def _screened(reason: str, row: Notification, keys: Vault) -> str:
    """The vendor's reason, unless it repeats the person's name or a line of their address
    (it would then carry contact details into the ledger's reasons and the timeline)."""
    if not reason:
        return reason
    subject = row.subject
    quoted = [keys.decrypt("name", subject.name_enc) or ""]
    quoted += (keys.decrypt("address", subject.address_enc) or "").splitlines()
    folded = reason.casefold()
    if any(len(part.strip()) >= 3 and part.strip().casefold() in folded for part in quoted):
        return "the vendor's reason quoted the person's contact details (withheld)"
    return reason
