"""Importing affected people: every row stored, merged into a known person, or rejected."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from breachflow.flows.assess import subjects as subjects_module
from breachflow.flows.assess.subjects import PARALLEL_FROM_BYTES, _RejectFile, import_subjects
from breachflow.models import runtime
from breachflow.models.commands import declare
from breachflow.models.crypto import Vault
from breachflow.models.db import Database
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState, Severity
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, TimelineEvent, advance, verify_chain
from tests.conftest import POSTGRES_URL
from tests.testkit.factories import people, run_import, write_csv

HEADER = "subject_id,name,email,phone,locale,country,region,data_categories,loyalty_tier\n"
#: One entry per physical line; the comments give each row's expected fate.
MIXED = (
    HEADER  # line 1
    + "S1,Zebulon Quarrington,Zeb.Q@Example.COM,(415) 555-2671,en_us,us,ca,email; Phone,gold\n"
    + 'S2,"Wang, Fang",wang.fang@example.cn,138 0013 8000,zh_cn,CN,,,\n'  # 3 stored
    + ",Nobody Herewith,nobody.herewith@example.com,+1 415 555 2673,en,US,,,\n"  # 4 rejected
    + 'S3,"Multi\n'  # 5 rejected: line break in a field ...
    + 'Linington",multi.line@example.com,+1 415 555 2674,en,US,,,\n'  # 6 ... continues here
    + "S4,Ragged Rowena,ragged.rowena@example.com\n"  # 7 rejected: ragged
    + "S5,Bell\x07Ringer,bell.ringer@example.com,+1 415 555 2675,en,US,,,\n"  # 8 rejected
    + "S6,Badmail Betty,not-an-email,+1 415 555 2672,en,US,,,\n"  # 9 stored, email problem
    + "S7,Badphone Bob,bad.phone@example.com,12345,en,US,,,\n"  # 10 stored, phone problem
    + "\n"  # 11 blank: not a row
    + 'S8,"Quoted ""Nick""",nick.quoted@example.com,,fr,FR,,,\n'  # 12 stored
    + "I" * 201 + ",Longid Larry,longid.larry@example.com,,en,US,,,\n"  # 13 rejected
    + "S9,王芳,wangfang@example.cn,,zh-cn,CN,,,\n"  # 14 stored
)  # fmt: skip
EXPECTED_REJECTS = {
    4: "subject_id is empty",
    5: "field 'name' contains a line break or control character",
    7: "expected 9 fields, found 3",
    8: "field 'name' contains a line break or control character",
    13: "subject_id is over 200 characters",
}
STORED = {"S1", "S2", "S6", "S7", "S8", "S9"}
#: Every name, email and phone in MIXED, as written and as normalized.
CONTACTS = [
    "Zebulon Quarrington",
    "Zeb.Q@Example.COM",
    "Zeb.Q@example.com",
    "Wang, Fang",
    "wang.fang@example.cn",
    "Nobody Herewith",
    "nobody.herewith@example.com",
    "Linington",
    "multi.line@example.com",
    "Ragged Rowena",
    "ragged.rowena@example.com",
    "Ringer",
    "bell.ringer@example.com",
    "Badmail Betty",
    "not-an-email",
    "Badphone Bob",
    "bad.phone@example.com",
    'Quoted "Nick"',
    "nick.quoted@example.com",
    "Longid Larry",
    "longid.larry@example.com",
    "王芳",
    "wangfang@example.cn",
    "(415) 555-2671",
    "4155552671",
    "138 0013 8000",
    "13800138000",
    *(f"415 555 {n}" for n in range(2672, 2676)),
    *(f"415555{n}" for n in range(2672, 2676)),
]


@pytest.fixture
def keys(db: Database) -> Vault:
    """The data key's vault, fetched before any unit of work (it runs its own)."""
    return runtime.vault()


def new_incident(db: Database, title: str = "Support credential misuse") -> int:
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        incident = declare(
            session,
            title=title,
            description="A stolen credential was used.",
            severity=Severity.HIGH,
            detected_at=now - timedelta(hours=5),
            aware_at=now - timedelta(hours=2),
            data_categories=["email", "phone"],
            actor="alice",
        )
        return incident.id


@pytest.fixture
def incident_id(db: Database) -> int:
    return new_incident(db)


def write(tmp_path: Path, text: str, name: str = "affected.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def stored(db: Database, incident_id: int) -> dict[str, Subject]:
    with db.unit_of_work() as session:
        rows = session.scalars(select(Subject).where(Subject.incident_id == incident_id))
        return {row.external_id: row for row in rows}


def plain(keys: Vault, subject: Subject) -> dict[str, Any]:
    """A stored person as the user knows them: contact details decrypted."""
    return {
        "name": keys.decrypt("name", subject.name_enc),
        "email": keys.decrypt("email", subject.email_enc),
        "phone": keys.decrypt("phone", subject.phone_enc),
        "email_problem": subject.email_problem,
        "phone_problem": subject.phone_problem,
        "locale": subject.locale,
        "country": subject.country,
        "region": subject.region,
        "residence_inferred": subject.residence_inferred,
        "data_categories": subject.data_categories,
        "source_line": subject.source_line,
    }


def import_events(db: Database, incident_id: int) -> list[TimelineEvent]:
    with db.unit_of_work() as session:
        return list(
            session.scalars(
                select(TimelineEvent)
                .where(
                    TimelineEvent.incident_id == incident_id,
                    TimelineEvent.kind == EventKind.SUBJECTS_IMPORTED,
                )
                .order_by(TimelineEvent.seq)
            )
        )


def test_valid_rows_are_stored_normalized(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Email normalized, phone in E.164 by the row's country, locale and region cased."""
    run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    people = stored(db, incident_id)
    zeb, wang, nick, fang = (plain(keys, people[k]) for k in ("S1", "S2", "S8", "S9"))
    assert zeb["name"] == "Zebulon Quarrington"
    assert zeb["email"] == "Zeb.Q@example.com"
    assert zeb["phone"] == "+14155552671"
    assert (zeb["locale"], zeb["country"], zeb["region"]) == ("en-US", "US", "US-CA")
    assert (zeb["email_problem"], zeb["phone_problem"]) == (None, None)
    assert zeb["residence_inferred"] is False
    assert zeb["source_line"] == 2
    assert wang["name"] == "Wang, Fang"
    assert wang["phone"] == "+8613800138000"
    assert (wang["locale"], wang["country"], wang["region"]) == ("zh-CN", "CN", None)
    assert nick["name"] == 'Quoted "Nick"'
    assert (nick["locale"], nick["phone"], nick["source_line"]) == ("fr", None, 12)
    assert (fang["name"], fang["locale"], fang["source_line"]) == ("王芳", "zh-CN", 14)


def test_data_categories_are_parsed(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """'email; Phone' becomes ['email', 'phone']; an empty cell stores no categories."""
    run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    people = stored(db, incident_id)
    assert people["S1"].data_categories == ["email", "phone"]
    assert people["S2"].data_categories is None


def test_residence_is_inferred_from_the_phone_without_a_country_column(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """No country column: the phone's country becomes the residence, flagged and counted."""
    path = write(
        tmp_path,
        "subject_id,email,phone\n"
        "R1,r1@example.com,+44 20 7946 0958\n"
        "R2,r2@example.com,+86 138 0013 8000\n"
        "R3,r3@example.com,\n",
    )
    report = run_import(db, keys, incident_id, path, tmp_path)
    people = stored(db, incident_id)
    assert (people["R1"].country, people["R1"].residence_inferred) == ("GB", True)
    assert (people["R2"].country, people["R2"].residence_inferred) == ("CN", True)
    assert (people["R3"].country, people["R3"].residence_inferred) == (None, False)
    assert keys.decrypt("phone", people["R1"].phone_enc) == "+442079460958"
    assert report.residence_inferred == 2
    [event] = import_events(db, incident_id)
    assert event.payload["residence_inferred_from_phone"] == 2


def test_bad_rows_are_rejected_with_their_physical_line(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Each unusable row is rejected with the line it starts on, even after a multi-line field."""
    report = run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    assert dict(report.rejected) == EXPECTED_REJECTS
    assert report.rejected_count == len(EXPECTED_REJECTS)
    assert set(stored(db, incident_id)) == STORED


def test_crlf_files_count_lines_the_same(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A Windows (CRLF) export reports the same line numbers as the LF one."""
    path = write(tmp_path, MIXED.replace("\n", "\r\n"))
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert dict(report.rejected) == EXPECTED_REJECTS
    assert set(stored(db, incident_id)) == STORED


def test_a_10_mb_cell_is_rejected_quickly_by_line(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A 10 MB cell rejects its row (no crash, no csv field limit error) in well under a second."""
    path = tmp_path / "huge.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("subject_id,name,email\n")
        handle.write("H1,Before Huge,before.huge@example.com\n")
        handle.write("H2," + "x" * (10 * 1024 * 1024) + ",huge@example.com\n")
        handle.write("H3,After Huge,after.huge@example.com\n")
    started = time.monotonic()
    report = run_import(db, keys, incident_id, path, tmp_path)
    elapsed = time.monotonic() - started
    assert report.rejected == [(3, "field 'name' is longer than 1000 characters")]
    assert set(stored(db, incident_id)) == {"H1", "H3"}
    assert stored(db, incident_id)["H3"].source_line == 4
    assert elapsed < 3, f"a 10 MB cell took {elapsed:.1f} s"


def test_every_row_is_accounted_for(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """rows == new + merged + rejected; the blank line is not a row; extra columns are listed."""
    text = MIXED + "S1,Zebulon Again,zeb.again@example.com,,en,US,,,\n"  # line 15: merged
    report = run_import(db, keys, incident_id, write(tmp_path, text), tmp_path)
    assert report.rows == 12
    assert (report.new, report.merged, report.rejected_count) == (6, 1, 5)
    assert report.rows == report.new + report.merged + report.rejected_count
    assert report.new == len(stored(db, incident_id))
    assert report.ignored_columns == ["loyalty_tier"]
    assert report.contact_problem_rows == 2


def test_a_bad_email_or_phone_keeps_the_person(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """People with an unusable address are stored with the problem, and warned about."""
    report = run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    people = stored(db, incident_id)
    bad_email, bad_phone = plain(keys, people["S6"]), plain(keys, people["S7"])
    assert bad_email["email"] is None and people["S6"].email_index is None
    assert bad_email["email_problem"].startswith("invalid email address")
    assert bad_email["phone"] == "+14155552672"
    assert bad_phone["phone"] is None and people["S7"].phone_index is None
    assert bad_phone["phone_problem"] == "invalid phone number: not a valid number for its region"
    assert bad_phone["email"] == "bad.phone@example.com"
    assert report.contact_problem_rows == 2
    assert sorted(line for line, _ in report.warnings) == [9, 10]


def test_a_repeated_subject_id_is_merged_with_a_warning(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """The same subject_id twice in one file is one person; the warning names the first line."""
    path = write(
        tmp_path,
        "subject_id,name,email,phone\n"
        "D1,Dora Duplicate,dora@example.com,\n"
        "D2,Other Person,other@example.com,\n"
        "D1,Dora Again,,+1 415 555 2671\n",
    )
    report = run_import(db, keys, incident_id, path, tmp_path)
    people = stored(db, incident_id)
    assert set(people) == {"D1", "D2"}
    assert (report.new, report.merged, report.rejected_count) == (2, 1, 0)
    assert report.warnings == [(4, "same person as line 2 (same subject_id); merged")]
    dora = plain(keys, people["D1"])
    assert (dora["name"], dora["email"]) == ("Dora Duplicate", "dora@example.com")
    assert dora["phone"] == "+14155552671"  # the channel she lacked is added


def test_two_subject_ids_sharing_an_email_are_two_people(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A subject_id is a person: two ids sharing a mailbox or a phone (a family) are both
    stored, with their own names, and counted; nothing is merged."""
    path = write(
        tmp_path,
        "subject_id,name,email,phone\n"
        "E1,Erin Example,erin.example@example.com,+1 415 555 2671\n"
        "E2,Eric Example,  Erin.Example@EXAMPLE.Com  ,+1 415 555 2671\n"
        "E3,Ella Example,,+1 415 555 2671\n",
    )
    report = run_import(db, keys, incident_id, path, tmp_path)
    people = stored(db, incident_id)
    assert set(people) == {"E1", "E2", "E3"}
    assert (report.new, report.merged, report.warnings) == (3, 0, [])
    names = {k: plain(keys, v)["name"] for k, v in people.items()}
    assert names == {"E1": "Erin Example", "E2": "Eric Example", "E3": "Ella Example"}
    assert people["E1"].email_index == people["E2"].email_index  # the same mailbox, twice


def test_a_phone_added_in_a_later_import_joins_the_known_person(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Import 2 gives only a phone for a subject_id known by email: the phone is added."""
    first = write(tmp_path, "subject_id,name,email\nK1,Kim Known,kim.known@example.com\n", "a.csv")
    second = write(tmp_path, "subject_id,phone,country\nK1,(415) 555-2671,US\n", "b.csv")
    run_import(db, keys, incident_id, first, tmp_path)
    report = run_import(db, keys, incident_id, second, tmp_path)
    assert (report.new, report.merged, report.rejected_count) == (0, 1, 0)
    people = stored(db, incident_id)
    assert set(people) == {"K1"}
    kim = plain(keys, people["K1"])
    assert (kim["name"], kim["email"]) == ("Kim Known", "kim.known@example.com")
    assert kim["phone"] == "+14155552671"
    assert people["K1"].phone_index == keys.blind_index(incident_id, "phone", "+14155552671")


def test_reimporting_the_same_file_adds_nobody(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A second import of the same file merges every row: no new people, same people stored."""
    path = write(tmp_path, MIXED)
    first = run_import(db, keys, incident_id, path, tmp_path)
    before = {k: plain(keys, v) for k, v in stored(db, incident_id).items()}
    second = run_import(db, keys, incident_id, path, tmp_path)
    assert (first.new, first.merged) == (6, 0)
    assert (second.new, second.merged, second.rejected_count) == (0, 6, 5)
    assert {k: plain(keys, v) for k, v in stored(db, incident_id).items()} == before
    assert [e.payload["new_people"] for e in import_events(db, incident_id)] == [6, 0]
    assert first.reject_file == tmp_path / "rejects" / f"{_key(db, incident_id)}-1.csv"
    assert second.reject_file == tmp_path / "rejects" / f"{_key(db, incident_id)}-2.csv"


def _key(db: Database, incident_id: int) -> str:
    with db.unit_of_work() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        return incident.key


def test_the_timeline_records_the_counts(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A subjects.imported event carries the counts and the file's SHA-256; the chain holds."""
    path = write(tmp_path, MIXED)
    run_import(db, keys, incident_id, path, tmp_path)
    [event] = import_events(db, incident_id)
    assert event.actor == "alice"
    payload = event.payload
    assert payload["file"] == "affected.csv"
    assert payload["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert payload["rows"] == 11
    assert (payload["new_people"], payload["merged"], payload["rejected"]) == (6, 0, 5)
    assert payload["with_contact_problems"] == 2
    assert {r["line"]: r["reason"] for r in payload["rejected_lines"]} == EXPECTED_REJECTS
    assert payload["ignored_columns"] == ["loyalty_tier"]
    with db.unit_of_work() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert verify_chain(session, incident).ok


def test_a_reject_file_lists_line_and_reason(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Rejected rows are written to <rejects>/<key>-1.csv as line,reason."""
    report = run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    assert report.reject_file == tmp_path / "rejects" / f"{_key(db, incident_id)}-1.csv"
    with report.reject_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "reason"]
    assert {int(line): reason for line, reason in rows[1:]} == EXPECTED_REJECTS


def test_no_reject_file_without_rejects(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A clean file creates no reject file."""
    path = write(tmp_path, "subject_id,email\nC1,clean@example.com\n")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.reject_file is None
    assert not (tmp_path / "rejects").exists()


def test_reject_file_cells_that_look_like_formulas_are_quoted(tmp_path: Path) -> None:
    """A reason starting with =, +, - or @ is written with a leading quote; others unchanged."""
    reasons = ['=HYPERLINK("http://evil.example")', "+1+1", "-2+3", "@SUM(A1)", "plain reason"]
    with _RejectFile(tmp_path, "INC-2099-0001") as rejects:
        for line, reason in enumerate(reasons, start=2):
            rejects.write(line, reason)
    assert rejects.path == tmp_path / "INC-2099-0001-1.csv"
    with rejects.path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["line", "reason"],
        ["2", '\'=HYPERLINK("http://evil.example")'],
        ["3", "'+1+1"],
        ["4", "'-2+3"],
        ["5", "'@SUM(A1)"],
        ["6", "plain reason"],
    ]


def _raw_database_text(db: Database) -> list[tuple[str, str, str | bytes]]:
    """Every value of every column of every table, as the database hands it back."""
    values: list[tuple[str, str, str | bytes]] = []
    with db.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            result = conn.execute(sa.text(f'SELECT * FROM "{table}"'))  # noqa: S608
            columns = list(result.keys())
            for row in result:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    if not isinstance(value, bytes):
                        value = json.dumps(value, default=str, ensure_ascii=False) + str(value)
                    values.append((table, column, value))
    return values


def _found(needle: str, haystack: str | bytes) -> bool:
    if isinstance(haystack, bytes):
        return needle.lower().encode() in haystack.lower()
    return needle.lower() in haystack.lower()


def test_no_contact_detail_is_stored_in_clear(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Reading every column of every table raw, no imported name, email or phone appears."""
    run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    extra = write(tmp_path, "subject_id,phone,country\nS8,+33 6 12 34 56 78,FR\n", "more.csv")
    run_import(db, keys, incident_id, extra, tmp_path)
    contacts = [*CONTACTS, "+33612345678", "612345678", "+33 6 12 34 56 78"]
    values = _raw_database_text(db)
    assert any(table == "subjects" for table, _, _ in values)  # the check saw the people
    leaks = [
        (table, column, needle)
        for table, column, value in values
        for needle in contacts
        if _found(needle, value)
    ]
    assert leaks == []
    if db.is_sqlite:  # and not in the file either, free pages and WAL included
        database_file = Path(db.engine.url.database or "")
        for path in database_file.parent.glob(database_file.name + "*"):
            data = path.read_bytes().lower()
            assert [c for c in contacts if c.lower().encode() in data] == [], path.name


def test_no_contact_detail_leaks_into_reasons_or_the_timeline(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Reasons, warnings, the timeline payload and the reject file quote no email or phone."""
    text = MIXED + "S1,Zebulon Again,zeb.again@example.com,+1 415 555 2671,en,US,,,\n"
    report = run_import(db, keys, incident_id, write(tmp_path, text), tmp_path)
    [event] = import_events(db, incident_id)
    assert report.reject_file is not None
    assert report.warnings  # there is something to look into
    haystacks = {
        "rejected": json.dumps(report.rejected, ensure_ascii=False),
        "warnings": json.dumps(report.warnings, ensure_ascii=False),
        "timeline": json.dumps(event.payload, ensure_ascii=False),
        "reject file": report.reject_file.read_text(encoding="utf-8"),
    }
    contacts = [*CONTACTS, "zeb.again@example.com"]
    leaks = [(w, c) for w, text in haystacks.items() for c in contacts if _found(c, text)]
    assert leaks == []


def test_import_is_refused_once_the_incident_is_notified(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """After notification, an import raises InvalidInput and stores nothing."""
    with db.unit_of_work() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        for state in (IncidentState.ASSESSED, IncidentState.NOTIFYING, IncidentState.NOTIFIED):
            advance(session, incident, state, "alice")
    with pytest.raises(InvalidInput, match="notified"):
        run_import(db, keys, incident_id, write(tmp_path, MIXED), tmp_path)
    assert stored(db, incident_id) == {}
    assert import_events(db, incident_id) == []


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("id,email", "1,a@example.com"),
        ("subject_id,name", "1,No Contact"),
    ],
    ids=["no subject_id", "no email or phone"],
)
def test_a_header_without_the_needed_columns_is_refused(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, header: str, row: str
) -> None:
    """A header lacking subject_id, or both email and phone, is a clear InvalidInput."""
    path = write(tmp_path, f"{header}\n{row}\n")
    with pytest.raises(InvalidInput, match="needs a subject_id column and a contact column"):
        run_import(db, keys, incident_id, path, tmp_path)
    assert stored(db, incident_id) == {}
    assert import_events(db, incident_id) == []


def _big_file(tmp_path: Path) -> Path:
    """Over PARALLEL_FROM_BYTES, padded by an ignored column, with repeats across chunks."""
    padding = "p" * 900
    lines = ["subject_id,name,email,phone,country,notes"]
    count = PARALLEL_FROM_BYTES // 950 + 200
    for n in range(1, count + 1):
        if n % 997 == 0:
            lines.append(f",Nameless {n},nobody{n}@example.com,,GB,{padding}")  # rejected
        elif n % 401 == 0 and n > 2300:  # same email as an earlier person: another person
            lines.append(f"B{n},Repeat {n},big{n - 2300}@example.com,,GB,{padding}")
        elif n % 389 == 0 and n > 2100:  # same subject_id as an earlier person, now with a phone
            lines.append(f"B{n - 2100},,,+44 7400 {n:06d},GB,{padding}")
        else:
            lines.append(f"B{n},Person {n},big{n}@example.com,,GB,{padding}")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > PARALLEL_FROM_BYTES
    return path


def test_parallel_validation_stores_exactly_the_same_people(
    db: Database, keys: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workers=2 on a file over PARALLEL_FROM_BYTES stores the same people as workers=1."""
    pools: list[int] = []

    class CountingPool(subjects_module.ProcessPoolExecutor):
        def __init__(self, workers: int, **kwargs: Any) -> None:
            pools.append(workers)
            super().__init__(workers, **kwargs)

    monkeypatch.setattr(subjects_module, "ProcessPoolExecutor", CountingPool)
    path = _big_file(tmp_path)
    serial_id, parallel_id = new_incident(db, "Serial"), new_incident(db, "Parallel")
    serial = run_import(db, keys, serial_id, path, tmp_path, workers=1)
    assert pools == []
    parallel = run_import(db, keys, parallel_id, path, tmp_path, workers=2)
    assert pools == [2]

    def people(incident_id: int) -> set[tuple[Any, ...]]:
        return {
            (k, *(json.dumps(v) for v in plain(keys, s).values()))
            for k, s in stored(db, incident_id).items()
        }

    assert serial.rows > 4000 and serial.merged > 0 and serial.rejected_count > 0
    assert people(parallel_id) == people(serial_id)
    for field in ("rows", "new", "merged", "rejected_count", "rejected", "warnings"):
        assert getattr(parallel, field) == getattr(serial, field), field


def test_a_channel_added_by_a_merge_clears_the_no_contact_problem(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A person first seen with no contact, then with a phone, is no longer 'without a phone'."""
    path = write(
        tmp_path,
        "subject_id,email,phone\nN1,,\nN2,,+1 415 555 2671\nN1,,+1 415 555 2672\n",
    )
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert (report.new, report.merged) == (2, 1)
    people = stored(db, incident_id)
    assert keys.decrypt("phone", people["N1"].phone_enc) == "+14155552672"
    assert people["N2"].email_problem is None  # a phone alone is no email problem
    assert people["N1"].email_problem is None  # as N2: the claim "no phone" is now false


def test_a_long_name_is_cut_with_a_warning(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A 500-character name (under the field limit) is stored cut to 300, with a warning."""
    path = write(tmp_path, f"subject_id,name,email\nL1,{'N' * 500},long.name@example.com\n")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert (report.new, report.rejected_count) == (1, 0)
    assert report.warnings == [(2, "name cut to its first 300 characters")]
    assert keys.decrypt("name", stored(db, incident_id)["L1"].name_enc) == "N" * 300


def test_a_later_import_adds_a_channel_to_its_subject_id_not_to_a_namesake_by_email(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A later file gives A1 a phone, and B7 (A1's email, its own phone) is a new person:
    A1 keeps its own phone, B7 is counted with its own."""
    first = tmp_path / "first.csv"
    first.write_text("subject_id,email,phone,country\nA1,a1@example.com,,GB\n", encoding="utf-8")
    later = tmp_path / "later.csv"
    later.write_text(
        "subject_id,email,phone,country\n"
        "A1,,+44 20 7946 0000,GB\nB7,a1@example.com,+44 20 7946 0958,GB\n",
        encoding="utf-8",
    )
    run_import(db, keys, incident_id, first, tmp_path)
    report = run_import(db, keys, incident_id, later, tmp_path)
    assert (report.new, report.merged) == (1, 1)
    people = stored(db, incident_id)
    assert sorted(people) == ["A1", "B7"]
    assert plain(keys, people["A1"])["phone"] == "+442079460000"
    assert plain(keys, people["B7"])["phone"] == "+442079460958"


@pytest.mark.parametrize("database_url", ["postgresql"] if POSTGRES_URL else [], indirect=True)
def test_finding_known_people_is_planned_for_each_chunk_never_prepared(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Each chunk's lookup of who is already known must be planned with its own keys.
    psycopg prepares a statement on its fifth run; PostgreSQL then settled on a generic
    plan made while the table was nearly empty, which read every stored person for every
    chunk (968 rows/s at 100,000 people; 3 min 53 s for 100,000 beside 25,000, now 9 s).
    After 13 chunks, the importing session holds no prepared lookup."""
    path = write_csv(tmp_path / "people.csv", people(26_000))
    with db.unit_of_work() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        report = import_subjects(
            session, incident, path, actor="alice", vault=keys, default_locale="en",
            rejects_dir=tmp_path / "rejects",
        )  # fmt: skip
        prepared = session.execute(
            sa.text("SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%ANY%'")
        ).all()
    assert report.new == 26_000
    assert prepared == []
