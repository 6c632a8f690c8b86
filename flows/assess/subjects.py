"""Import the affected people of an incident from an export, merging with who is known.

Every record is accounted for: a new person, merged into a person already known (the same
``subject_id``: channels the known person lacks are added), or rejected with its line and
reason (written to ``rejects/INC-…-N.csv``). A person whose email or phone is unusable is
still stored: they are affected, and the ledger will show them unreachable with the reason.
A ``subject_id`` is a person: two ids are two people even when they share an email or a
phone (a family, a shared mailbox), and both are counted, notified and reported.

Memory stays flat: records stream from the file in chunks; each chunk is validated
(in worker processes for large files) and merged against the database by ``subject_id``,
so no index of everyone is ever held in memory. The whole import is one
transaction: it lands with its timeline event, or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from breachflow.flows.assess.population import (
    NO_CONTACT,
    Person,
    Rejection,
    start_worker,
    validate,
    validate_chunk,
)
from breachflow.flows.assess.readers import Record, open_source
from breachflow.models import bulk
from breachflow.models.base import utcnow
from breachflow.models.crypto import Vault
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, record

KNOWN_COLUMNS = (
    "subject_id", "name", "email", "phone", "push", "address", "locale", "country", "region",
    "data_categories",
)  # fmt: skip
CONTACT_COLUMNS = ("email", "phone", "push", "address")
CHUNK = 2000
SHOWN = 1000  # rejects and warnings kept for display; all rejects go to the file
PARALLEL_FROM_BYTES = 4 * 1024 * 1024  # below this, starting worker processes costs more
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: SQLAlchemy types ``__table__`` as FromClause; a ``__tablename__`` class maps a Table.
_SUBJECTS = cast(Table, Subject.__table__)

Progress = Callable[[int, int, int], None]  # rows read, progress, total (bytes or rows)


@dataclass
class ImportReport:
    file: str
    sha256: str = ""
    source: str = ""
    rows: int = 0
    new: int = 0
    merged: int = 0
    rejected_count: int = 0
    warning_count: int = 0
    contact_problem_rows: int = 0
    residence_inferred: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    reject_file: Path | None = None

    def reject(self, line: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < SHOWN:
            self.rejected.append((line, reason))

    def warn(self, line: int, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < SHOWN:
            self.warnings.append((line, message))


def import_subjects(
    session: Session,
    incident: Incident,
    path: Path,
    *,
    actor: str,
    vault: Vault,
    default_locale: str,
    rejects_dir: Path,
    encoding: str | None = None,
    mapping: dict[str, str] | None = None,
    workers: int = 1,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Validate and store the people in ``path``; records the counts on the timeline."""
    if incident.has_reached(IncidentState.NOTIFIED):
        raise InvalidInput(
            f"{incident.key} is already {incident.state}; people can only be added before "
            "notification has finished"
        )
    source = open_source(
        path, encoding=encoding, mapping=mapping or {}, used=frozenset(KNOWN_COLUMNS)
    )
    if "subject_id" not in source.columns or not set(CONTACT_COLUMNS) & set(source.columns):
        raise InvalidInput(
            f"{path.name}: needs a subject_id column and a contact column "
            f"({', '.join(CONTACT_COLUMNS)}; map yours with --map email=YourColumn); "
            f"found: {', '.join(source.columns) or 'nothing'}"
        )
    report = ImportReport(file=path.name, sha256=_sha256(path), source=source.describe)
    report.ignored_columns = [c for c in source.columns if c not in KNOWN_COLUMNS]
    parallel = workers > 1 and path.stat().st_size >= PARALLEL_FROM_BYTES
    results = _validated(
        source.records, incident.id, vault, default_locale, workers if parallel else 1
    )
    # The planner's view of the table, refreshed after the first chunk and as it doubles:
    # while it believes the table empty, every index looks alike and a lookup by one key
    # may read all of the incident's rows per key (bulk.analyze).
    analyzed_at = 0
    with _RejectFile(rejects_dir, incident.key) as rejects:
        for chunk in results:
            people: list[Person] = []
            for item in chunk:
                report.rows += 1
                if isinstance(item, Rejection):
                    report.reject(item.line, item.reason)
                    rejects.write(item.line, item.reason)
                    continue
                for message in item.warnings:
                    report.warn(item.line, message)
                report.contact_problem_rows += bool(item.email_problem or item.phone_problem)
                report.residence_inferred += item.residence_inferred
                people.append(item)
            _merge(session, incident.id, people, report)
            if report.new > 2 * analyzed_at:
                bulk.analyze(session, _SUBJECTS)
                analyzed_at = report.new
            if on_progress:
                on_progress(report.rows, source.done(report.rows), source.total)
        report.reject_file = rejects.path
    record(session, incident, EventKind.SUBJECTS_IMPORTED, actor, _summary(report))
    return report


def _summary(report: ImportReport) -> dict[str, Any]:
    return {
        "file": report.file,
        "sha256": report.sha256,
        "source": report.source,
        "rows": report.rows,
        "new_people": report.new,
        "merged": report.merged,
        "rejected": report.rejected_count,
        "with_contact_problems": report.contact_problem_rows,
        "residence_inferred_from_phone": report.residence_inferred,
        "rejected_lines": [{"line": n, "reason": r} for n, r in report.rejected[:100]],
        "reject_file": str(report.reject_file) if report.reject_file else None,
        "ignored_columns": report.ignored_columns,
    }


def _chunks(records: Iterator[Record]) -> Iterator[list[Record]]:
    while chunk := list(islice(records, CHUNK)):
        yield chunk


def _validated(
    records: Iterator[Record], incident_id: int, vault: Vault, locale: str, workers: int
) -> Iterator[list[Person | Rejection]]:
    """Validated chunks, in file order; with ``workers`` > 1, validated in other processes."""
    if workers <= 1:
        for chunk in _chunks(records):
            yield [validate(r, incident_id, vault, locale) for r in chunk]
        return
    context = multiprocessing.get_context("spawn")  # safe beside the threads we may run
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_worker, initargs=(vault.master_key,)
    ) as pool:
        pending: deque[Any] = deque()
        for chunk in _chunks(records):
            pending.append(pool.submit(validate_chunk, chunk, incident_id, locale))
            if len(pending) > 2 * workers:  # bounded read-ahead keeps memory flat
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass(slots=True)
class _Known:
    """What merging needs to know of a person: which channels they have, and where from."""

    id: int | None  # None until inserted
    line: int
    email_index: str | None
    phone_index: str | None
    email_problem: str | None
    has_push: bool
    has_address: bool
    row: dict[str, Any] | None = None  # the insert for a new person; None for a stored one
    changes: dict[str, Any] = field(default_factory=dict)


def _merge(session: Session, incident_id: int, people: list[Person], report: ImportReport) -> None:
    """Insert new people; fold repeats of a ``subject_id`` into the person they repeat."""
    known = _known(session, incident_id, people)
    new: list[dict[str, Any]] = []  # the rows of new people, as bulk.insert_rows takes them
    now = utcnow().replace(tzinfo=None)  # stored form of a UTC time
    for person in people:
        target = known.get(person.external_id)
        if target is None:
            row = _row(incident_id, person, now)
            known[person.external_id] = _Known(
                None, person.line, person.email_index, person.phone_index, person.email_problem,
                person.push_enc is not None, person.address_enc is not None, row=row,
            )  # fmt: skip
            new.append(row)  # the same dict: folding a repeat into it updates it
            continue
        report.merged += 1
        report.warn(person.line, f"same person as line {target.line} (same subject_id); merged")
        _fold(target, person)
    if new:
        bulk.insert_rows(session, _SUBJECTS, new)
        report.new += len(new)
    changed = {k.id: k.changes for k in known.values() if k.id and k.changes}
    for subject_id, values in changed.items():  # rare: one statement per merged person
        session.execute(update(Subject).where(Subject.id == subject_id).values(values))


def _known(session: Session, incident_id: int, people: list[Person]) -> dict[str, _Known]:
    """The people of this chunk already stored, by ``subject_id``."""
    columns = (
        "id", "source_line", "external_id", "email_index", "phone_index", "email_problem",
        "push_enc", "address_enc",
    )  # fmt: skip
    wanted = {p.external_id for p in people}
    rows = bulk.select_where_in(
        session, _SUBJECTS, columns, ("incident_id", incident_id), "external_id", wanted
    )
    return {
        row.external_id: _Known(
            row.id,
            row.source_line,
            row.email_index,
            row.phone_index,
            row.email_problem,
            row.push_enc is not None,
            row.address_enc is not None,
        )
        for row in rows
    }


def _fold(target: _Known, person: Person) -> None:
    """Add the channels ``target`` lacks; never overwrite one it has."""
    values = target.row if target.row is not None else target.changes
    if target.email_index is None and person.email_index:
        target.email_index = person.email_index
        values.update(
            email_enc=person.email_enc, email_index=person.email_index, email_problem=None
        )
    if target.phone_index is None and person.phone_index:
        target.phone_index = person.phone_index
        values.update(
            phone_enc=person.phone_enc, phone_index=person.phone_index, phone_problem=None
        )
    if not target.has_push and person.push_enc:
        target.has_push = True
        values.update(push_enc=person.push_enc, push_problem=None)
    if not target.has_address and person.address_enc:
        target.has_address = True
        values.update(address_enc=person.address_enc, address_problem=None)
    reachable = target.email_index or target.phone_index or target.has_push or target.has_address
    if target.email_problem == NO_CONTACT and reachable:
        target.email_problem = values["email_problem"] = None  # no longer true


def _row(incident_id: int, person: Person, imported_at: datetime) -> dict[str, Any]:
    """The person as ``bulk.insert_rows`` stores it (``imported_at`` naive UTC, JSON as text)."""
    return {
        "incident_id": incident_id,
        "external_id": person.external_id,
        "name_enc": person.name_enc,
        "email_enc": person.email_enc,
        "email_index": person.email_index,
        "email_problem": person.email_problem,
        "phone_enc": person.phone_enc,
        "phone_index": person.phone_index,
        "phone_problem": person.phone_problem,
        "push_enc": person.push_enc,
        "push_problem": person.push_problem,
        "address_enc": person.address_enc,
        "address_problem": person.address_problem,
        "locale": person.locale,
        "country": person.country,
        "region": person.region,
        "residence_inferred": person.residence_inferred,
        "data_categories": json.dumps(person.data_categories) if person.data_categories else None,
        "source_line": person.line,
        "imported_at": imported_at,
    }


class _RejectFile:
    """``rejects/INC-…-N.csv`` (line, reason), created on the first reject.

    Cells that a spreadsheet would run as a formula are prefixed with a quote.
    """

    def __init__(self, directory: Path, incident_key: str) -> None:
        self.directory, self.incident_key = directory, incident_key
        self.path: Path | None = None
        self._handle: Any = None
        self._writer: Any = None

    def write(self, line: int, reason: str) -> None:
        if self._writer is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            number = len(list(self.directory.glob(f"{self.incident_key}-*.csv"))) + 1
            self.path = (self.directory / f"{self.incident_key}-{number}.csv").resolve()
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["line", "reason"])
        self._writer.writerow([line, neutralize(reason)])

    def __enter__(self) -> _RejectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle:
            self._handle.close()


def neutralize(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
