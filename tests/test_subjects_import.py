"""Importing affected people from CSV: every row stored or rejected with its line and reason."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.subjects import ImportReport, import_subjects
from models.commands import declare
from models.db import Database
from models.errors import InvalidInput
from models.incident import Incident, Severity
from models.subject import Subject
from models.timeline import EventKind, TimelineEvent, verify_chain

HEADER = "subject_id,name,email,phone,locale,country,region,loyalty_tier\n"
LONG = "x" * 2000
#: One line per physical line; the comments give each row's expected fate.
MIXED = (
    HEADER  # line 1
    + "S1,Alice,Alice@Example.COM,(415) 555-2671,en_us,us,ca,gold\n"  # 2 stored
    + 'S2,"Wang, Fang",wang.fang@example.cn,138 0013 8000,zh_cn,CN,,\n'  # 3 stored
    + ",Nobody,nobody@example.com,+1 415 555 2673,en,US,,\n"  # 4 empty subject_id
    + 'S3,"Multi\n'  # 5 line break in a field ...
    + 'Line",multi.line@example.com,+1 415 555 2674,en,US,,\n'  # 6 ... continues here
    + "S1,Alice Again,alice.again@example.com,+1 415 555 2675,en,US,,\n"  # 7 duplicate
    + "S4,Ragged,ragged@example.com\n"  # 8 ragged
    + f"S5,{LONG},long.field@example.com,+1 415 555 2676,en,US,,\n"  # 9 over-long field
    + "S6,Bad Email,not-an-email,+1 415 555 2672,en,US,,\n"  # 10 stored, email problem
    + "S7,Bad Phone,bad.phone@example.com,12345,en,US,,\n"  # 11 stored, phone problem
    + "\n"  # 12 blank: not a row
    + 'S8,"Quoted ""Nick""",s8@example.com,,fr,FR,,\n'  # 13 stored
)
EXPECTED_REJECTS = {
    4: "subject_id is empty",
    5: "a field contains a line break or NUL character",
    7: "subject_id 'S1' already appears on line 2",
    8: "expected 8 fields, found 3",
    9: "a field is longer than 1000 characters",
}
#: Every contact detail in MIXED, as written and as normalized.
CONTACTS = [
    "Alice@Example.COM",
    "Alice@example.com",
    "alice@example.com",
    "wang.fang@example.cn",
    "nobody@example.com",
    "multi.line@example.com",
    "alice.again@example.com",
    "ragged@example.com",
    "long.field@example.com",
    "not-an-email",
    "bad.phone@example.com",
    "s8@example.com",
    "(415) 555-2671",
    "4155552671",
    "138 0013 8000",
    "13800138000",
    *(f"415 555 {n}" for n in range(2672, 2677)),
    *(f"415555{n}" for n in range(2672, 2677)),
    "12345",
]


@pytest.fixture
def incident(db: Database) -> Incident:
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        return declare(
            session,
            title="Support credential misuse",
            description="A stolen credential was used.",
            severity=Severity.HIGH,
            detected_at=now - timedelta(hours=5),
            aware_at=now - timedelta(hours=2),
            data_categories=["email", "phone"],
            actor="alice",
        )


def write(tmp_path: Path, text: str, name: str = "affected.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run_import(db: Database, incident: Incident, path: Path, rejects: Path) -> ImportReport:
    with db.unit_of_work() as session:
        fresh = session.get(Incident, incident.id)
        assert fresh is not None
        return import_subjects(session, fresh, path, "alice", "en", rejects)


def stored(db: Database, incident: Incident) -> dict[str, Subject]:
    with db.unit_of_work() as session:
        rows = session.scalars(select(Subject).where(Subject.incident_id == incident.id))
        return {row.external_id: row for row in rows}


def import_events(db: Database, incident: Incident) -> list[TimelineEvent]:
    with db.unit_of_work() as session:
        return list(
            session.scalars(
                select(TimelineEvent)
                .where(
                    TimelineEvent.incident_id == incident.id,
                    TimelineEvent.kind == EventKind.SUBJECTS_IMPORTED,
                )
                .order_by(TimelineEvent.seq)
            )
        )


def test_valid_rows_are_stored_normalized(db: Database, incident: Incident, tmp_path: Path) -> None:
    """Email normalized, phone in E.164 using the row's country, locale and region cased."""
    run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    people = stored(db, incident)
    alice, wang, nick = people["S1"], people["S2"], people["S8"]
    assert alice.name == "Alice"
    assert alice.email == "Alice@example.com"
    assert alice.phone == "+14155552671"
    assert (alice.locale, alice.country, alice.region) == ("en-US", "US", "US-CA")
    assert (alice.email_problem, alice.phone_problem) == (None, None)
    assert alice.source_line == 2
    assert wang.name == "Wang, Fang"
    assert wang.phone == "+8613800138000"
    assert (wang.locale, wang.country, wang.region) == ("zh-CN", "CN", None)
    assert nick.name == 'Quoted "Nick"'
    assert (nick.locale, nick.phone, nick.source_line) == ("fr", None, 13)


def test_bad_rows_are_rejected_with_their_physical_line(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """Each unusable row is rejected with the line it starts on (after a multi-line field too)."""
    report = run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    assert dict(report.rejected) == EXPECTED_REJECTS
    assert len(report.rejected) == len(EXPECTED_REJECTS)
    assert set(stored(db, incident)) == {"S1", "S2", "S6", "S7", "S8"}


def test_every_row_is_accounted_for(db: Database, incident: Incident, tmp_path: Path) -> None:
    """rows == accepted + rejected; the blank line is not a row; extra columns are listed."""
    report = run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    assert report.rows == 10
    assert report.accepted == 5 == len(stored(db, incident))
    assert report.accepted + len(report.rejected) == report.rows
    assert report.ignored_columns == ["loyalty_tier"]


def test_a_bad_email_or_phone_keeps_the_person(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """People with an unusable address are stored with the problem and counted as warnings."""
    report = run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    people = stored(db, incident)
    bad_email, bad_phone = people["S6"], people["S7"]
    assert bad_email.email is None
    assert bad_email.email_problem and bad_email.email_problem.startswith("invalid email address")
    assert bad_email.phone == "+14155552672"
    assert bad_phone.phone is None
    assert bad_phone.phone_problem == "invalid phone number: not a valid number for its region"
    assert bad_phone.email == "bad.phone@example.com"
    assert sorted(line for line, _ in report.warnings) == [10, 11]


def test_the_timeline_records_the_counts(db: Database, incident: Incident, tmp_path: Path) -> None:
    """A subjects.imported event carries the counts and the rejected lines; the chain holds."""
    run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    [event] = import_events(db, incident)
    assert event.actor == "alice"
    payload = event.payload
    assert payload["file"] == "affected.csv"
    assert (payload["rows"], payload["accepted"], payload["rejected"]) == (10, 5, 5)
    assert payload["with_contact_problems"] == 2
    assert {r["line"]: r["reason"] for r in payload["rejected_lines"]} == EXPECTED_REJECTS
    assert payload["ignored_columns"] == ["loyalty_tier"]
    with db.unit_of_work() as session:
        assert verify_chain(session, session.get(Incident, incident.id)).ok  # type: ignore[arg-type]


def test_a_reject_file_lists_line_and_reason(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """Rejected rows are written to <rejects>/<key>-1.csv as line,reason for fixing."""
    rejects = tmp_path / "out" / "rejects"
    report = run_import(db, incident, write(tmp_path, MIXED), rejects)
    assert report.reject_file == rejects / f"{incident.key}-1.csv"
    with report.reject_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "reason"]
    assert {int(line): reason for line, reason in rows[1:]} == EXPECTED_REJECTS


def test_no_contact_detail_leaks_into_reasons_or_the_timeline(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """Reasons, warnings, the timeline payload and the reject file quote no email or phone."""
    report = run_import(db, incident, write(tmp_path, MIXED), tmp_path / "rejects")
    [event] = import_events(db, incident)
    assert report.reject_file is not None
    haystacks = {
        "rejected": json.dumps(report.rejected, ensure_ascii=False),
        "warnings": json.dumps(report.warnings, ensure_ascii=False),
        "timeline": json.dumps(event.payload, ensure_ascii=False),
        "reject file": report.reject_file.read_text(encoding="utf-8"),
    }
    leaks = [
        (where, contact)
        for where, text in haystacks.items()
        for contact in CONTACTS
        if contact.lower() in text.lower()
    ]
    assert leaks == []


def test_a_header_without_subject_id_is_refused(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """A header without subject_id raises InvalidInput naming the column; nothing is stored."""
    path = write(tmp_path, "id,email\n1,a@example.com\n")
    with pytest.raises(InvalidInput, match="subject_id"):
        run_import(db, incident, path, tmp_path / "rejects")
    assert stored(db, incident) == {}
    assert import_events(db, incident) == []


def test_a_non_utf8_file_is_refused_cleanly(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """A Latin-1 export raises InvalidInput saying it is not UTF-8, and stores nothing."""
    text = HEADER + "S1,José Müller,jose@example.com,,es,ES,,\n"
    path = write(tmp_path, text, encoding="latin-1")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        run_import(db, incident, path, tmp_path / "rejects")
    assert stored(db, incident) == {}
    assert import_events(db, incident) == []


def test_a_missing_file_is_refused(db: Database, incident: Incident, tmp_path: Path) -> None:
    """Importing a path that does not exist raises InvalidInput, not a traceback."""
    with pytest.raises(InvalidInput, match="no such file"):
        run_import(db, incident, tmp_path / "nope.csv", tmp_path / "rejects")


def test_reimporting_the_same_file_rejects_every_row(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """A second import of the same file stores nothing new: each row 'was already imported'."""
    text = HEADER + "".join(f"P{n},Person {n},p{n}@example.com,,en,,,\n" for n in range(1, 4))
    path = write(tmp_path, text)
    first = run_import(db, incident, path, tmp_path / "rejects")
    second = run_import(db, incident, path, tmp_path / "rejects")
    assert (first.accepted, first.rejected) == (3, [])
    assert first.reject_file is None
    assert second.accepted == 0
    assert second.rejected == [
        (n + 1, f"subject_id 'P{n}' was already imported") for n in (1, 2, 3)
    ]
    assert second.reject_file == tmp_path / "rejects" / f"{incident.key}-1.csv"
    assert len(stored(db, incident)) == 3
    assert [e.payload["accepted"] for e in import_events(db, incident)] == [3, 0]


def test_a_utf8_bom_header_is_understood(db: Database, incident: Incident, tmp_path: Path) -> None:
    """Excel's UTF-8 with BOM: the first column is still subject_id and rows are stored."""
    text = HEADER + "S1,王芳,wang@example.cn,,zh-cn,CN,,\n"
    path = write(tmp_path, text, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = run_import(db, incident, path, tmp_path / "rejects")
    assert (report.accepted, report.rejected) == (1, [])
    person = stored(db, incident)["S1"]
    assert (person.name, person.locale) == ("王芳", "zh-CN")


def test_crlf_files_count_lines_the_same(db: Database, incident: Incident, tmp_path: Path) -> None:
    """A Windows (CRLF) export reports the same line numbers as the LF one."""
    report = run_import(db, incident, write(tmp_path, MIXED.replace("\n", "\r\n")), tmp_path)
    assert dict(report.rejected) == EXPECTED_REJECTS
    assert report.accepted == 5


def test_an_over_long_subject_id_is_rejected_with_its_line_not_a_crash(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """An id longer than the stored 200 characters is refused by line, on every import.

    Storing it cut would make a re-import miss the match and hit the unique constraint.
    """
    long_id = "ID-" + "7" * 300
    path = write(
        tmp_path,
        HEADER + f"{long_id},Long Id,long.id@example.com,,en,,,\nS2,Ok,ok@example.com,,en,,,\n",
    )
    for _ in range(2):
        report = run_import(db, incident, path, tmp_path / "rejects")
        assert report.rejected[0] == (2, "subject_id is over 200 characters")
    assert report.accepted == 0 and report.rows == 2  # S2 came in with the first import


def test_a_name_within_the_field_limit_is_stored_on_every_backend(
    db: Database, incident: Incident, tmp_path: Path
) -> None:
    """A 500-character name passes the 1000-character field check and must then be storable.

    The subjects.name column is VARCHAR(300): PostgreSQL refuses the insert and the whole
    import fails, while SQLite stores it. Either cut it or reject the row; don't crash.
    """
    name = "N" * 500
    path = write(tmp_path, HEADER + f"S1,{name},n@example.com,,en,,,\n")
    report = run_import(db, incident, path, tmp_path / "rejects")
    assert report.accepted + len(report.rejected) == report.rows == 1
