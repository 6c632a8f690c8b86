"""Letters through a mailing vendor, end to end: a real Prefect run hands them over in waves,
the vendor's own age identity opens the hand-over, and its return file moves the ledger.

On SQLite and PostgreSQL. The vendor is played by this test: it decrypts the merge file
with an identity made here and writes the return file a vendor would.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pyrage
import pytest
from sqlalchemy import select

from breachflow.flows.incident import incident_response
from breachflow.flows.notify.forecast import forecast
from breachflow.flows.notify.returns import import_returns
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.notification import Notification
from breachflow.models.timeline import TimelineEvent, verify_chain
from breachflow.notifiers.letter_vendor import MERGE_FILE
from tests.conftest import SQLITE_ONLY
from tests.flows.notify.test_fallback import person, seed

pytestmark = pytest.mark.usefixtures("prefect_api")

#: Five people the post reaches; C also has an email address to fall back to.
ADDRESSES = {
    "A": "Ann Archer|1 Alder Road|Abingdon|OX14 1AA|United Kingdom",
    "B": "2 Beech Close|Bristol|BS1 2BB|United Kingdom",
    "C": "3 Cedar Mews|Cardiff|CF10 3CC|United Kingdom",
    "D": "4 Damson Lane|Derby|DE1 4DD|United Kingdom",
    "E": "5 Elm Row|Exeter|EX1 5EE|United Kingdom",
}
PEOPLE = [
    person(s, address=a, **({"email": "cedric@example.com"} if s == "C" else {}))
    for s, a in ADDRESSES.items()
]
#: What must never be on disk in clear, in an error or on the timeline.
SECRETS = [
    *(f"Person {s}" for s in ADDRESSES),
    "Ann Archer",
    "cedric@example.com",
    *(line for a in ADDRESSES.values() for line in a.split("|")[:-2] if "Ann" not in line),
]
TODAY = datetime.now(UTC).date()


@pytest.fixture
def vendor(settings, monkeypatch) -> pyrage.x25519.Identity:
    """The vendor's identity; letters go to it from the first one, two posted a day."""
    identity = pyrage.x25519.Identity.generate()
    monkeypatch.setenv("BREACH_LETTER_VENDOR_RECIPIENT", str(identity.to_public()))
    monkeypatch.setenv("BREACH_LETTER_VENDOR_THRESHOLD", "0")
    monkeypatch.setenv("BREACH_LETTER_PIECES_PER_DAY", "2")
    runtime.reset()
    return identity


def incident_with_letters(db, settings, tmp_path: Path) -> str:
    key = seed(db, settings, tmp_path, PEOPLE)
    with db.unit_of_work() as session:
        commands.get_incident(session, key).channel_chain = ["letter", "email"]
    return key


def letters(db, key: str) -> dict[str, Notification]:
    """Each person's letter row, by subject id."""
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = session.scalars(
            select(Notification).where(
                Notification.incident_id == incident.id, Notification.channel == "letter"
            )
        ).all()
        return {row.subject.external_id: row for row in rows}


def states(db, key: str) -> list[tuple[str, str, str, str | None, str | None]]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = session.scalars(
            select(Notification)
            .where(Notification.incident_id == incident.id)
            .order_by(Notification.id)
        ).all()
        return [
            (r.subject.external_id, r.channel, str(r.state), str(r.sent_at), r.last_error)
            for r in rows
        ]


def merge_rows(settings, identity) -> list[dict[str, str]]:
    """Every row of every hand-over in the drop folder, as the vendor decrypts them."""
    rows = []
    for path in sorted((settings.outbox / "letter").glob(f"V*/{MERGE_FILE}")):
        clear = pyrage.decrypt(path.read_bytes(), [identity]).decode("utf-8")
        rows += csv.DictReader(io.StringIO(clear, newline=""))
    return rows


def return_file(path: Path, lines: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["reference", "status", "date", "reason", "vendor_job"])
        writer.writerows([*line, "JOB-77"] for line in lines)
    return path


def timeline(db, key: str) -> list[TimelineEvent]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return list(
            session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident.id)
                .order_by(TimelineEvent.seq)
            )
        )


def test_the_vendor_hand_over_decrypts_with_its_key_and_its_return_file_moves_the_ledger(
    db, settings, vendor, tmp_path
):
    key = incident_with_letters(db, settings, tmp_path)

    # 1. The run hands every letter over, in waves of two a day, and waits for the vendor.
    summary = incident_response(key, requested_by="test")
    assert summary.state == "notifying"
    assert summary.waiting_for and f"breach letters returns {key} FILE" in summary.waiting_for
    assert (summary.notified, summary.pending) == (0, 5)  # handed over is not reached
    rows = letters(db, key)
    assert {str(r.state) for r in rows.values()} == {"handed_over"}
    assert all(r.sent_at is None for r in rows.values())
    in_queue_order = sorted(rows.values(), key=lambda r: r.id)
    assert [r.mail_on for r in in_queue_order] == [
        TODAY,
        TODAY,
        TODAY + timedelta(days=1),
        TODAY + timedelta(days=1),
        TODAY + timedelta(days=2),
    ]

    # 2. The vendor opens it with its own key: one row per letter, matching the ledger.
    merged = {row["reference"]: row for row in merge_rows(settings, vendor)}
    assert set(merged) == {r.idempotency_key for r in rows.values()}
    for subject_id, row in rows.items():
        line = merged[row.idempotency_key]
        assert line["mail_on"] == str(row.mail_on)
        assert line["recipient_name"] == f"Person {subject_id}"
        assert line["address_line_1"] == ADDRESSES[subject_id].split("|")[0]
        assert line["template"] == "template-en.html" and line["notice_version"] == "1"
        assert (
            row.provider_message_id
            and (settings.outbox / "letter" / row.provider_message_id).is_dir()
        )
    for path in (settings.outbox / "letter").rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert not [s for s in SECRETS if s.encode() in raw], path.name

    # 3. The forecast counts them as pending until the last wave is posted.
    with db.unit_of_work() as session:
        ahead = forecast(session, commands.get_incident(session, key), runtime.settings())
    [letter] = [c for c in ahead.channels if c.channel == "letter"]
    assert letter.pending == 5
    assert letter.finishes_at == datetime.combine(TODAY + timedelta(days=3), time(), UTC)

    # 4. The vendor's first return file: two mailed, one returned, three lines wrong.
    ref = {s: r.idempotency_key for s, r in rows.items()}
    first = return_file(
        tmp_path / "returns-1.csv",
        [
            (ref["A"], "mailed", str(TODAY), ""),
            (ref["B"], "Mailed", str(TODAY), ""),
            (ref["C"], "undeliverable", str(TODAY), "Addressee gone away"),
            (ref["D"], "mailed", str(TODAY + timedelta(days=3)), ""),  # not yet possible
            (ref["E"], "lost", str(TODAY), ""),
            ("0" * 32, "mailed", str(TODAY), ""),
            (ref["E"], "mailed", "yesterday-ish", ""),
        ],
    )
    report = import_returns(key, first, "cli:tester")
    assert (report.lines, report.outcome["mailed"], report.outcome["fell_back"]) == (7, 2, 1)
    assert report.errors == [
        (5, "date is in the future"),
        (6, "status must be mailed or undeliverable"),
        (7, f"unknown reference: no letter of {key}"),
        (8, "date is not a date (YYYY-MM-DD)"),
    ]
    assert report.with_vendor == 2
    rows = letters(db, key)
    midnight = datetime.combine(TODAY, time(), UTC)
    assert [str(rows[s].state) for s in "ABCDE"] == [
        "sent",
        "sent",
        "failed_permanent",
        "handed_over",
        "handed_over",
    ]
    assert rows["A"].sent_at == rows["B"].sent_at == min(midnight, utcnow())
    assert rows["C"].last_error == (
        f"letter: returned undeliverable on {TODAY}: Addressee gone away"
    )
    ledger_now = states(db, key)
    assert ("C", "email", "queued") in [(s, c, st) for s, c, st, *_ in ledger_now]

    # 5. The same file again changes nothing.
    again = import_returns(key, first, "cli:tester")
    assert again.outcome["unchanged"] == 3 and len(again.errors) == 4
    assert states(db, key) == ledger_now

    # 6. Still waiting: a run sends C's email, but the vendor has two letters.
    waiting = incident_response(key, requested_by="test")
    assert waiting.state == "notifying" and "2 letters handed over" in (waiting.waiting_for or "")

    # 7. The rest: D mailed, E returned (no channel left: unreachable, with the reason).
    second = return_file(
        tmp_path / "returns-2.csv",
        [
            (ref["D"], "mailed", str(TODAY), ""),
            (ref["E"], "undeliverable", str(TODAY), "Insufficient address"),
        ],
    )
    report = import_returns(key, second, "cli:tester")
    assert (report.outcome["mailed"], report.outcome["unreachable"], report.errors) == (1, 1, [])
    assert report.with_vendor == 0

    # 8. The run goes on from where it stopped, to the end.
    done = incident_response(key, requested_by="test")
    assert done.state == "reporting" and "2 letters handed over" not in (done.waiting_for or "")
    assert (done.notified, done.unreachable) == (4, 1)
    [reason] = done.unreachable_reasons
    assert "letter: returned undeliverable" in reason and "Insufficient address" in reason

    # Every change is on the timeline, which still verifies; no contact detail is in it.
    events = timeline(db, key)
    kinds = [e.kind for e in events]
    assert kinds.count("letters.awaiting_returns") == 2
    imports = [e.payload for e in events if e.kind == "letters.returns_imported"]
    assert {e.actor for e in events if e.kind == "letters.returns_imported"} == {"cli:tester"}
    assert [(p["mailed"], p["undeliverable"], p["unchanged"], p["errors"]) for p in imports] == [
        (2, 1, 0, 4),
        (0, 0, 3, 4),
        (1, 1, 0, 0),
    ]
    everything = json.dumps([e.payload for e in events], ensure_ascii=False)
    assert not [s for s in SECRETS if s in everything]
    with db.unit_of_work() as session:
        assert verify_chain(session, commands.get_incident(session, key)).ok


def test_a_reason_quoting_the_persons_address_is_withheld(db, settings, vendor, tmp_path):
    key = incident_with_letters(db, settings, tmp_path)
    incident_response(key, requested_by="test")
    rows = letters(db, key)
    lines = [(rows["E"].idempotency_key, "undeliverable", str(TODAY), "No 5 Elm Row here")]
    import_returns(key, return_file(tmp_path / "r.csv", lines), "cli:tester")
    reason = letters(db, key)["E"].last_error or ""
    assert "Elm Row" not in reason and "withheld" in reason


def test_dates_before_the_hand_over_could_not_have_happened(db, settings, vendor, tmp_path):
    key = incident_with_letters(db, settings, tmp_path)
    incident_response(key, requested_by="test")
    ref = letters(db, key)["A"].idempotency_key
    lines = [(ref, "mailed", str(TODAY - timedelta(days=5)), "")]
    report = import_returns(key, return_file(tmp_path / "r.csv", lines), "cli:tester")
    assert report.errors == [(2, f"date is before the letter was handed over ({TODAY})")]
    assert str(letters(db, key)["A"].state) == "handed_over"

    mailed = import_returns(
        key, return_file(tmp_path / "r2.csv", [(ref, "mailed", str(TODAY), "")]), "t"
    )
    assert mailed.outcome["mailed"] == 1
    lines = [(ref, "mailed", str(TODAY - timedelta(days=1)), "")]  # possible west of UTC
    other_day = import_returns(key, return_file(tmp_path / "r3.csv", lines), "t")
    assert other_day.errors == [(2, f"already recorded as mailed on {TODAY}")]


def test_waves_fill_the_daily_capacity_from_the_first_queued_day_never_in_the_past(
    db, settings, vendor, tmp_path
):
    """Five letters, two a day, first queued yesterday: waves 0, 0, 1, 1, 2; a wave whose
    day has passed is posted today, the day it is handed over."""
    from breachflow.flows.notify import vendor as handover
    from breachflow.models import ledger
    from breachflow.models.delivery import Channel

    key = incident_with_letters(db, settings, tmp_path)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        ledger.queue(session, incident, [Channel.LETTER], 1)
    with db.unit_of_work() as session:
        for row in session.scalars(select(Notification)):
            row.queued_at = utcnow() - timedelta(days=1)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        first = ledger.claim(session, incident, Channel.LETTER, "w", 3, 60)
        second = ledger.claim(session, incident, Channel.LETTER, "w", 3, 60)
        waves = handover.plan(session, incident, second, runtime.settings()) or {}
        waves |= handover.plan(session, incident, first, runtime.settings()) or {}
    yesterday = TODAY - timedelta(days=1)
    assert [(w.number, w.mail_on) for _, w in sorted(waves.items())] == [
        (0, TODAY),
        (0, TODAY),
        (1, TODAY),
        (1, TODAY),
        (2, yesterday + timedelta(days=2)),
    ]


def test_below_the_threshold_letters_are_still_a_pdf_each(
    db, settings, vendor, monkeypatch, tmp_path
):
    monkeypatch.setenv("BREACH_LETTER_VENDOR_THRESHOLD", "6")  # five letters
    runtime.reset()
    key = incident_with_letters(db, settings, tmp_path)
    summary = incident_response(key, requested_by="test")
    assert summary.state == "reporting" and summary.notified == 5  # no vendor to wait for
    assert "letters handed over" not in (summary.waiting_for or "")
    assert {str(r.state) for r in letters(db, key).values()} == {"sent"}
    assert not list((settings.outbox / "letter").glob("V*"))


@SQLITE_ONLY
def test_live_without_the_vendors_key_nothing_is_written_and_the_letters_wait(
    db, settings, monkeypatch, tmp_path
):
    drop = tmp_path / "drop"
    monkeypatch.setenv("BREACH_NOTIFIER_MODE", "live")
    monkeypatch.setenv("BREACH_LETTER_DROPBOX", str(drop))
    monkeypatch.setenv("BREACH_LETTER_VENDOR_THRESHOLD", "0")
    runtime.reset()
    key = incident_with_letters(db, settings, tmp_path)
    with pytest.raises(InvalidInput, match="BREACH_LETTER_VENDOR_RECIPIENT"):
        incident_response(key, requested_by="test")
    assert not drop.exists() or not [p for p in drop.rglob("*") if p.is_file()]
    assert {str(r.state) for r in letters(db, key).values()} <= {"queued", "failed_temporary"}
    assert all(r.attempts == 0 for r in letters(db, key).values())
