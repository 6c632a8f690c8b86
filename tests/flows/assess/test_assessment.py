"""The assessment from the CLI: who must be told what by when, and a record that holds still."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from breachflow.models import commands
from breachflow.models.chain import chain_for
from breachflow.models.timeline import TimelineEvent
from breachflow.rules import RULES_DIR
from tests.conftest import SQLITE_ONLY
from tests.testkit.factories import EXAMPLE_NOTICE

KEYS = {
    "regime", "audience", "phase", "deadline", "deadline_rule", "applies", "reason",
    "content_fields", "citation", "confidence",
}  # fmt: skip
#: Every shipped rule file (issue 19: at least 90 regimes besides the operator's policy).
REGIMES = {path.stem for path in RULES_DIR.glob("*.yaml")} - {"groups", "timezones"}
DETECTED = "2026-11-02T09:00:00+00:00"
AWARE = "2026-11-10T09:00:00+00:00"


def declare(breach, *extra: str) -> str:
    done = breach(
        "declare", "--title", "Export of customer records", "--severity", "high",
        "--detected-at", DETECTED, "--aware-at", AWARE, "--description", "d",
        "--data-category", "email", "--data-category", "national_id",
        "--notice", str(EXAMPLE_NOTICE), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def import_people(breach, tmp_path: Path, key: str) -> None:
    """612 Californians, 40 Germans, 300 people in China."""
    rows = ["subject_id,email,country,region,locale"]
    rows += [f"CA{n},ca{n}@example.com,US,CA,en" for n in range(612)]
    rows += [f"DE{n},de{n}@example.de,DE,,en" for n in range(40)]
    rows += [f"CN{n},cn{n}@example.cn,CN,,zh-CN" for n in range(300)]
    path = tmp_path / "people.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = breach("subjects", "import", key, str(path))
    assert done.returncode == 0, done.stderr


def obligations(breach, key: str) -> dict:
    done = breach("obligations", key, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def find(document: dict, regime: str, audience: str) -> dict:
    """The obligation for regime and audience; the one that applies, if versions differ."""
    matches = [
        o for o in document["obligations"] if o["regime"] == regime and o["audience"] == audience
    ]
    return next((o for o in matches if o["applies"]), matches[0])


@SQLITE_ONLY
def test_obligations_json_answers_for_every_regime_and_sets_the_window(breach, tmp_path):
    key = declare(breach)
    import_people(breach, tmp_path, key)
    assessed = breach("assess", key)
    assert assessed.returncode == 0, assessed.stderr
    assert "us-ca" in assessed.stdout and "Notification window for individuals" in assessed.stdout

    document = obligations(breach, key)
    assert document["incident"] == key and document["assessed_at"].endswith("Z")
    assert len(REGIMES) >= 91
    assert {o["regime"] for o in document["obligations"]} == REGIMES
    assert {o["confidence"] for o in document["obligations"]} <= {"✓", "~", "U"}
    assert all(set(o) >= KEYS for o in document["obligations"])
    assert all(o["citation"] for o in document["obligations"])

    california = find(document, "us-ca", "individuals")
    assert california["applies"] and "612" in california["reason"]
    # 30 calendar days from discovery, which defaults to detection: earlier than the policy
    assert datetime.fromisoformat(california["deadline"]) == datetime.fromisoformat(
        DETECTED
    ) + timedelta(days=30)
    assert document["notice_deadline"] == california["deadline"]
    gdpr = find(document, "eu-gdpr", "regulator")
    assert gdpr["applies"] and "40" in gdpr["reason"]
    assert datetime.fromisoformat(gdpr["deadline"]) == datetime.fromisoformat(AWARE) + timedelta(
        hours=72
    )
    not_here = find(document, "jp-appi", "individuals")
    assert not not_here["applies"] and not_here["reason"]


@SQLITE_ONLY
def test_a_rule_change_moves_nothing_until_reassessed_and_the_move_is_recorded(
    breach, tmp_path, db
):
    key = declare(breach)
    import_people(breach, tmp_path, key)
    breach("assess", key)
    before = find(obligations(breach, key), "us-ca", "individuals")["deadline"]

    overrides = tmp_path / "rules-overrides"
    overrides.mkdir()
    changed = (RULES_DIR / "us-ca.yaml").read_text(encoding="utf-8")
    assert "amount: 30" in changed
    (overrides / "us-ca.yaml").write_text(changed.replace("amount: 30", "amount: 45", 1))

    unchanged = obligations(breach, key)  # the stored assessment, not today's rules
    assert find(unchanged, "us-ca", "individuals")["deadline"] == before

    breach("assess", key, BREACH_RULES_OVERRIDES=str(overrides))
    after = obligations(breach, key)
    assert after["ruleset_fingerprint"] != unchanged["ruleset_fingerprint"]
    moved = datetime.fromisoformat(find(after, "us-ca", "individuals")["deadline"])
    assert moved == datetime.fromisoformat(before) + timedelta(days=15)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        payloads = session.scalars(
            select(TimelineEvent.payload).where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "assessment.recorded",
            )
        ).all()
    assert [p["assessment"] for p in payloads] == [1, 2]
    assert any(
        m["regime"] == "us-ca" and m["audience"] == "individuals"
        for m in payloads[1]["deadlines_moved"]
    )


@SQLITE_ONLY
def test_update_records_old_and_new_facts_and_asks_for_reassessment(breach, tmp_path, db):
    key = declare(breach, "--risk", "medium")
    import_people(breach, tmp_path, key)
    breach("assess", key)
    done = breach("update", key, "--risk", "low", "--encrypted-key-safe")
    assert done.returncode == 0, done.stderr
    assert "risk medium → low" in done.stdout and f"breach assess {key}" in done.stdout
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        event = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "incident.updated",
            )
        ).one()
    assert event.payload == {
        "risk": {"from": "medium", "to": "low"},
        "encrypted_key_safe": {"from": False, "to": True},
    }
    breach("assess", key)
    gdpr_people = find(obligations(breach, key), "eu-gdpr", "individuals")
    assert not gdpr_people["applies"]  # encrypted with a safe key: Art 34(3)(a)


def test_an_incident_can_have_its_own_channel_chain(breach, tmp_path, db):
    """`breach update --channels` sets the fallback order for this incident; a typo is refused."""
    key = declare(breach, "--risk", "medium")
    refused = breach("update", key, "--channels", "email,pigeon")
    assert refused.returncode == 1 and "unknown channel 'pigeon'" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = breach("update", key, "--channels", "email, phone ,letter")
    assert done.returncode == 0, done.stderr
    assert "channel_chain None → ['email', 'voice', 'letter']" in done.stdout
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert chain_for(session, incident) == ["email", "voice", "letter"]


def test_an_unknown_data_category_is_refused_with_the_known_ones(breach):
    done = breach(
        "declare", "--title", "t", "--severity", "low", "--detected-at", DETECTED,
        "--aware-at", AWARE, "--description", "d", "--data-category", "shoe_size",
    )  # fmt: skip
    assert done.returncode == 1
    assert "unknown data category shoe_size" in done.stderr and "national_id" in done.stderr


def test_obligations_before_any_assessment_says_what_to_do(breach):
    key = declare(breach)
    done = breach("obligations", key, "--json")
    assert done.returncode == 1 and f"breach assess {key}" in done.stderr


@SQLITE_ONLY
def test_a_financial_entity_records_the_classification_and_doras_clock_moves(breach, tmp_path, db):
    """`breach update --classified-major-at`: the anchor DORA's 4-hour clock runs from.
    Before it is known, the 24-hour bound is the deadline; once known, the earlier wins."""
    financial = {"BREACH_ORGANISATION_SECTORS": '["dora-financial-entity"]'}
    key = declare(breach, "--risk", "high")
    people = tmp_path / "people.csv"  # a few, as DORA counts no heads
    people.write_text(
        "subject_id,email,country,region,locale\n"
        + "".join(f"DE{n},de{n}@example.de,DE,,en\n" for n in range(3))
        + "CA1,ca1@example.com,US,CA,en\n",
        encoding="utf-8",
    )
    assert breach("subjects", "import", key, str(people)).returncode == 0
    assert breach("assess", key, **financial).returncode == 0
    aware = datetime.fromisoformat(AWARE)
    dora = find(obligations(breach, key), "eu-dora", "regulator")
    assert dora["applies"] and dora["title"] == "initial notification"
    assert datetime.fromisoformat(dora["deadline"]) == aware + timedelta(hours=24)

    classified = (aware + timedelta(hours=2)).isoformat()
    done = breach("update", key, "--classified-major-at", classified, **financial)
    assert done.returncode == 0, done.stderr
    assert "classified_major_at None →" in done.stdout
    table = breach("assess", key, **financial)
    assert table.returncode == 0, table.stderr
    assert "eu-dora" in table.stdout and "notification" in table.stdout  # the law's name
    assert "Counsel to review" in table.stdout  # some answer rests on a ~ or U fact
    dora = find(obligations(breach, key), "eu-dora", "regulator")
    assert datetime.fromisoformat(dora["deadline"]) == aware + timedelta(hours=6)
    assert dora["confidence"] in ("✓", "~", "U")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        event = session.scalars(
            select(TimelineEvent)
            .where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "assessment.recorded",
            )
            .order_by(TimelineEvent.id.desc())
        ).first()
    assert event is not None
    unsure = {o["regime"] for o in obligations(breach, key)["obligations"]}
    assert set(event.payload["counsel_to_review"]) <= unsure
    assert "eu-gdpr" in event.payload["counsel_to_review"]  # its scope is a U reading
