"""Import the affected people of an incident from a CSV export.

Every data row ends up counted: stored, or rejected with its line number and reason. A
person whose email or phone is unusable is still stored (they are affected, and the
ledger will show them unreachable with the reason); only rows that cannot identify a
person are rejected. Reasons never quote a contact detail.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from models.errors import InvalidInput
from models.incident import Incident, IncidentState
from models.subject import Subject
from models.timeline import EventKind, record

REQUIRED_COLUMNS = ("subject_id",)
KNOWN_COLUMNS = ("subject_id", "name", "email", "phone", "locale", "country", "region")
CONTACT_COLUMNS = ("email", "phone")
LOCALE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?$", re.IGNORECASE)
MAX_FIELD = 1000  # longer cells are hostile or broken exports; no real name is this long
MAX_SUBJECT_ID = 200  # the stored width; a longer id could not be matched on re-import
MAX_NAME = 300


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    accepted: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    contact_problem_lines: set[int] = field(default_factory=set)
    ignored_columns: list[str] = field(default_factory=list)
    reject_file: Path | None = None


def normalize_locale(raw: str, default: str) -> tuple[str, str | None]:
    """BCP 47 casing (``zh-cn`` → ``zh-CN``); an unusable tag falls back to ``default``."""
    value = raw.strip().replace("_", "-")
    if not value:
        return default, None
    match = LOCALE.match(value)
    if not match:
        return default, f"locale {value[:20]!r} is not a language tag; using {default}"
    language, script, region = match.groups()
    parts = [
        language.lower(),
        script.title() if script else None,
        region.upper() if region else None,
    ]
    return "-".join(p for p in parts if p), None


def _email(raw: str) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    try:
        # No SMTPUTF8: Python's email package cannot write a non-ASCII local part.
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
        return checked.normalized, None
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"


def _phone(raw: str, country: str | None) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None, "invalid phone number: cannot be parsed"
    if not phonenumbers.is_valid_number(number):
        return None, "invalid phone number: not a valid number for its region"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number of the row's first line, fields); line 1 is the header."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        line = 1
        for row in reader:
            yield line, row
            line = reader.line_num + 1


def import_subjects(
    session: Session,
    incident: Incident,
    path: Path,
    actor: str,
    default_locale: str,
    rejects_dir: Path,
) -> ImportReport:
    """Validate and store the people in ``path``; records the counts on the timeline."""
    if incident.has_reached(IncidentState.NOTIFIED):
        raise InvalidInput(
            f"{incident.key} is already {incident.state}; people can only be added before "
            "notification has finished"
        )
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    report = ImportReport(file=path.name)
    known = set(
        session.scalars(select(Subject.external_id).where(Subject.incident_id == incident.id))
    )
    seen: dict[str, int] = {}
    batch: list[dict[str, object]] = []
    try:
        rows = _rows(path)
        _, header = next(rows, (1, []))
        columns = [c.strip().lower() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing or not any(c in columns for c in CONTACT_COLUMNS):
            raise InvalidInput(
                f"{path.name}: the header must have a subject_id column and an email or phone "
                f"column; found: {', '.join(columns) or 'nothing'}"
            )
        report.ignored_columns = [c for c in columns if c not in KNOWN_COLUMNS]
        for line, fields in rows:
            if not any(f.strip() for f in fields):
                continue  # blank line, not a row
            report.rows += 1
            problem = _check_shape(fields, len(columns))
            if problem:
                report.rejected.append((line, problem))
                continue
            values = {c: f.strip() for c, f in zip(columns, fields, strict=True)}
            external_id = values["subject_id"]
            if not external_id:
                report.rejected.append((line, "subject_id is empty"))
                continue
            if len(external_id) > MAX_SUBJECT_ID:
                report.rejected.append((line, f"subject_id is over {MAX_SUBJECT_ID} characters"))
                continue
            if external_id in seen:
                report.rejected.append(
                    (
                        line,
                        f"subject_id {external_id!r} already appears on line {seen[external_id]}",
                    )
                )
                continue
            seen[external_id] = line
            if external_id in known:
                report.rejected.append((line, f"subject_id {external_id!r} was already imported"))
                continue
            batch.append(_subject_row(incident, values, line, default_locale, report))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InvalidInput(f"{path.name} is not readable CSV: {exc}") from None
    if batch:
        session.execute(insert(Subject), batch)
    report.accepted = len(batch)
    if report.rejected:
        report.reject_file = _write_rejects(rejects_dir, incident, report)
    record(
        session,
        incident,
        EventKind.SUBJECTS_IMPORTED,
        actor,
        {
            "file": report.file,
            "rows": report.rows,
            "accepted": report.accepted,
            "rejected": len(report.rejected),
            "with_contact_problems": len(report.contact_problem_lines),
            "rejected_lines": [{"line": n, "reason": r} for n, r in report.rejected[:1000]],
            "ignored_columns": report.ignored_columns,
        },
    )
    return report


def _check_shape(fields: list[str], width: int) -> str | None:
    if len(fields) != width:
        return f"expected {width} fields, found {len(fields)}"
    if any(len(f) > MAX_FIELD for f in fields):
        return f"a field is longer than {MAX_FIELD} characters"
    if any(ch in f for f in fields for ch in "\x00\r\n"):
        return "a field contains a line break or NUL character"
    return None


def _subject_row(
    incident: Incident,
    values: dict[str, str],
    line: int,
    default_locale: str,
    report: ImportReport,
) -> dict[str, object]:
    country = values.get("country", "").upper() or None
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        report.warnings.append((line, f"country {country[:10]!r} is not an ISO 3166-1 code"))
        country = None
    region = values.get("region", "").upper() or None
    if region and country and "-" not in region:
        region = f"{country}-{region}"
    email, email_problem = _email(values.get("email", ""))
    phone, phone_problem = _phone(values.get("phone", ""), country)
    locale, locale_problem = normalize_locale(values.get("locale", ""), default_locale)
    name = values.get("name") or None
    if name and len(name) > MAX_NAME:
        report.warnings.append((line, f"name cut to its first {MAX_NAME} characters"))
        name = name[:MAX_NAME]
    for problem in (email_problem, phone_problem):
        if problem:
            report.warnings.append((line, problem))
            report.contact_problem_lines.add(line)
    if locale_problem:
        report.warnings.append((line, locale_problem))
    if not email and not phone:
        email_problem = email_problem or "no email address given"
    return {
        "incident_id": incident.id,
        "external_id": values["subject_id"],
        "name": name,
        "email": email,
        "email_problem": email_problem,
        "phone": phone,
        "phone_problem": phone_problem,
        "locale": locale,
        "country": country,
        "region": region[:10] if region else None,
        "source_line": line,
    }


def _write_rejects(directory: Path, incident: Incident, report: ImportReport) -> Path:
    """``rejects/INC-…-N.csv``: line, reason; the operator fixes those rows and re-imports."""
    directory.mkdir(parents=True, exist_ok=True)
    number = len(list(directory.glob(f"{incident.key}-*.csv"))) + 1
    target = directory / f"{incident.key}-{number}.csv"
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason"])
        writer.writerows(report.rejected)
    return target
