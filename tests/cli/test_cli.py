"""The ``breach`` command as a user types it: a real process for every command."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy import text

from breachflow import shipped
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.incident import Severity
from tests.conftest import SQLITE_ONLY
from tests.testkit.factories import EXAMPLE_NOTICE, people, write_csv


def tamper(db, seq: int) -> None:
    """What someone with database rights could do: drop the guard, edit one event."""
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER timeline_no_update")
        else:
            conn.exec_driver_sql("DROP TRIGGER timeline_append_only ON timeline_events")
        conn.execute(
            text("UPDATE timeline_events SET actor = 'someone-else' WHERE seq = :seq"),
            {"seq": seq},
        )


@SQLITE_ONLY  # what is printed; the same response runs on both in tests/flows
def test_by_hand_declare_import_run_show_timeline_verify(breach, db, settings, tmp_path):
    declared = breach(
        "declare", "--title", "Support credential misuse", "--severity", "high",
        "--detected-at", "2026-11-20T09:30:00+08:00", "--aware-at", "2026-11-20T15:00:00+08:00",
        "--data-category", "email", "--data-category", "phone",
        "--description", "A stolen credential was used to export records.",
        "--notice", str(EXAMPLE_NOTICE),
    )  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    key = declared.stdout.strip()
    assert key.startswith("INC-2026-")

    csv_path = write_csv(tmp_path / "affected.csv", people(12, broken_every=5))
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write("S00001,Again,again@example.com,,en,GB,\n")  # duplicate id, line 14
        handle.write(",No Id,noid@example.com,,en,GB,\n")  # line 15
    imported = breach("subjects", "import", key, str(csv_path))
    assert imported.returncode == 0, imported.stderr
    assert "12 new people, 1 merged" in imported.stdout and "1 rejected" in imported.stdout
    assert "14" in imported.stdout and "same person as line 2 (same subject_id)" in imported.stdout
    assert "15" in imported.stdout and "subject_id is empty" in imported.stdout
    assert "person5" not in imported.stdout  # problems are reported without the address

    ran = breach("run", key)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "People notified:   10" in ran.stdout
    assert "People unreachable: 2" in ran.stdout

    shown = breach("show", key)
    assert "reporting" in shown.stdout and "notices by email" in shown.stdout
    assert "open before closing" in shown.stdout  # the reports a person must file
    assert "2026-11-20 07:00:00 UTC" in shown.stdout  # aware-at, normalized to UTC
    assert "2026-12-20 07:00:00 UTC" in shown.stdout  # + 30 calendar days

    events = json.loads(breach("timeline", key, "--json").stdout)["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "incident.declared" and kinds[-1] == "run.finished"
    imported_event = next(e for e in events if e["kind"] == "subjects.imported")
    assert imported_event["payload"]["new_people"] == 12
    assert imported_event["payload"]["merged"] == 1
    assert imported_event["payload"]["rejected"] == 1
    assert [r["line"] for r in imported_event["payload"]["rejected_lines"]] == [15]

    again = breach("run", key)
    assert "People notified:   10 (0 in this run)" in again.stdout

    verified = breach("audit", "verify", key)
    assert verified.returncode == 0 and "verified" in verified.stdout
    tamper(db, seq=3)
    broken = breach("audit", "verify", key)
    assert broken.returncode == 1
    assert "BROKEN at event 3" in broken.stderr


@SQLITE_ONLY
def test_user_mistakes_get_a_clear_message_not_a_traceback(breach, tmp_path):
    missing = breach("show", "INC-2026-9999")
    assert missing.returncode == 1
    assert "no incident 'INC-2026-9999'" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout

    bad_time = breach(
        "declare", "--title", "t", "--severity", "high", "--detected-at", "yesterday",
        "--aware-at", "2026-11-20T15:00:00", "--data-category", "email", "--description", "d",
    )  # fmt: skip
    assert bad_time.returncode != 0 and "not an ISO 8601 time" in bad_time.stderr

    notice = tmp_path / "notice.yaml"
    notice.write_text("en:\n  subject_line: Hello\n", encoding="utf-8")
    incomplete = breach(
        "declare", "--title", "t", "--severity", "high", "--detected-at", "2026-11-20T09:00:00",
        "--aware-at", "2026-11-20T15:00:00", "--data-category", "email", "--description", "d",
        "--notice", str(notice),
    )  # fmt: skip
    assert incomplete.returncode == 1
    assert "'en'" in incomplete.stderr and "what_happened" in incomplete.stderr
    assert "Traceback" not in incomplete.stderr


@SQLITE_ONLY
def test_run_without_people_explains_what_to_do(breach):
    key = breach(
        "declare", "--title", "t", "--severity", "low", "--detected-at", "2026-11-20T09:00:00",
        "--aware-at", "2026-11-20T15:00:00", "--data-category", "email", "--description", "d",
        "--notice", str(EXAMPLE_NOTICE),
    ).stdout.strip()  # fmt: skip
    ran = breach("run", key)
    assert ran.returncode == 1
    assert f"breach subjects import {key}" in ran.stderr
    assert "Traceback" not in ran.stderr


@SQLITE_ONLY  # a new user's demo runs on the embedded SQLite; tests/flows run both
def test_demo_runs_the_whole_response_in_the_sandbox(breach, settings):
    """The demo's mix exercises every channel, the fallback, and people with none left."""
    ran = breach("demo", "--people", "200")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    outbox = settings.home / "outbox"
    notified = int(ran.stdout.split("People notified:")[1].split()[0])
    unreachable = int(ran.stdout.split("People unreachable:")[1].split()[0])
    assert notified + unreachable == 200 and notified > 150 and unreachable > 0
    written = (
        len(list((outbox / "email").glob("*.eml")))
        + sum(len(list((outbox / c).glob("*.json"))) for c in ("sms", "voice", "push"))
        + len(list((outbox / "letter").glob("*/*.pdf")))
    )
    assert written == notified  # one notice per person reached, on exactly one channel
    for channel in ("email", "sms", "voice", "push", "letter"):
        assert re.search(rf"^\s+{channel}\s+.*\d+ sent", ran.stdout, re.MULTILINE), channel
    assert "21614" in ran.stdout or list((outbox / "voice").glob("*.json"))  # landline → call
    assert "no channel left" in ran.stdout
    assert str(outbox.resolve()) in ran.stdout.replace("\n", "")
    assert "breach timeline INC-" in ran.stdout
    assert "same person as line 2 (same subject_id); merged" in ran.stdout
    # Done means: an announcement on the site, regulator packs, and `breach show` has both.
    key = re.search(r"Declared (INC-\d{4}-\d{4})", ran.stdout).group(1)
    site = settings.home / "site"
    for locale in ("en", "zh-CN"):
        assert key in (site / "announcements" / key / f"{locale}.html").read_text("utf-8")
    packs = list((settings.home / "reports").glob(f"{key}-*.pdf"))
    assert packs and all(p.with_suffix(".json").exists() for p in packs)
    shown = breach("show", key)
    assert "version 1" in shown.stdout and "site published" in shown.stdout
    assert "regulator reports" in shown.stdout and "awaiting submission" in shown.stdout


@SQLITE_ONLY
def test_demo_runs_under_an_operators_published_policy(breach, settings):
    """`breach demo --policy` uses that operator's promise for the notification window."""
    policy = shipped("examples") / "policies" / "operator-a.yaml"
    ran = breach("demo", "--people", "30", "--policy", str(policy))
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "Policy: operator-a" in ran.stdout
    assert "Notification window:" in ran.stdout and "(met)" in ran.stdout
    broken = settings.home.parent / "broken-policy.yaml"
    broken.write_text("name: x\nwindow_days: -3\n", encoding="utf-8")
    refused = breach("demo", "--people", "5", "--policy", str(broken))
    assert refused.returncode == 1 and "window_days" in refused.stderr
    assert "Traceback" not in refused.stderr


@SQLITE_ONLY
def test_examples_copies_the_shipped_files_and_keeps_a_users_own(breach, tmp_path):
    """An installed Breachflow has no examples/ folder beside it: `breach examples` puts
    the notice texts and policy profiles the README refers to where the user is."""
    folder = tmp_path / "examples"
    first = breach("examples", str(folder))
    assert first.returncode == 0, first.stderr
    assert (folder / "notice.yaml").read_text() == EXAMPLE_NOTICE.read_text()
    assert (folder / "policies" / "operator-a.yaml").is_file()
    (folder / "notice.yaml").write_text("# my own texts\n")
    again = breach("examples", str(folder))
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout
    assert (folder / "notice.yaml").read_text() == "# my own texts\n"


@SQLITE_ONLY
def test_examples_into_a_file_is_a_clear_error(breach, tmp_path):
    taken = tmp_path / "examples"
    taken.write_text("not a folder")
    answer = breach("examples", str(taken))
    assert answer.returncode == 1
    assert "cannot write" in answer.stderr and "Traceback" not in answer.stderr


@SQLITE_ONLY  # what is printed; the closing itself runs on both in tests/flows/close
def test_the_first_run_says_what_is_true_before_and_after_the_approval(
    breach, db, settings, tmp_path
):
    """Before the approval: everyone imported is counted, nobody is notified, the deadline
    is ahead (once this said "People affected: 0" and the window "met"). After it: the
    incident is reporting, with what is open listed, until a named person closes it."""
    gates = {"BREACH_APPROVAL_GATES": '["notify", "close"]'}
    declared = breach(
        "declare", "--title", "Support credential misuse", "--severity", "high",
        "--detected-at", "2026-12-01T09:30:00+08:00", "--aware-at", "2026-12-01T15:00:00+08:00",
        "--data-category", "email", "--description", "A stolen credential exported records.",
        "--notice", str(EXAMPLE_NOTICE),
    )  # fmt: skip
    key = declared.stdout.strip()
    csv_path = write_csv(tmp_path / "affected.csv", people(18))
    assert breach("subjects", "import", key, str(csv_path)).returncode == 0

    first = breach("run", key, **gates)
    assert first.returncode == 0, first.stderr
    assert f"breach approve {key} notice" in first.stdout
    assert "People affected:   18" in first.stdout
    assert "People notified:   0" in first.stdout
    assert "nobody notified yet" in first.stdout and "met" not in first.stdout
    shown = breach("show", key, **gates)
    assert "nobody notified yet" in shown.stdout and "(met)" not in shown.stdout

    # Four eyes: whoever declared it with these texts asks someone else to approve them.
    own = breach("approve", key, "notice", **gates)
    assert own.returncode == 1 and "four eyes" in own.stderr, own.stderr
    as_step = breach("step", key, "notification-approve-notice", "--done", **gates)
    assert as_step.returncode == 1 and f"breach approve {key} notice" in as_step.stderr
    approved = breach(
        "approve", key, "notice", "--note", "checked", BREACH_ACTOR="cli:bob", **gates
    )
    assert approved.returncode == 0, approved.stderr
    assert f"{key} is reporting." in approved.stdout
    assert "Open before it closes" in approved.stdout
    assert f"breach approve {key} closure" in approved.stdout
    assert "Notification window: 2026-12-31 07:00:00 UTC (met)" in approved.stdout
    shown = breach("show", key, **gates)
    assert "open before closing" in shown.stdout and "reporting" in shown.stdout

    refused = breach("close", key, "--reason", "short", **gates)
    assert refused.returncode != 0 and "needs a reason" in refused.stderr
    closed = breach("close", key, "--reason", "Merged into INC-2026-0002 by the DPO.", **gates)
    assert closed.returncode == 0, closed.stderr
    assert f"{key} is closed" in closed.stdout and "still open when closed" in closed.stdout
    again = breach("run", key, **gates)
    assert "already closed: nothing to do, nothing was sent" in again.stdout


MARKUP = "[link=https://evil.example/x]Click[/link] [white on white]hidden[/]"
HOSTILE = "Phish\x1b]8;;https://evil.example\x07click here\x1b]8;;\x07\x1b[2J\x9b31m\u202eevil"


@SQLITE_ONLY
def test_text_from_outside_never_reaches_the_terminal_as_instructions(breach, db) -> None:
    """A title or detail with ESC, OSC 8, an 8-bit CSI or a bidi override is printed as
    text: the only escapes in the output are the colours Rich adds itself."""
    with db.unit_of_work() as session:
        incident = commands.declare(
            session,
            title=HOSTILE,
            description=f"Described as {HOSTILE}",
            severity=Severity.HIGH,
            detected_at=utcnow() - timedelta(hours=2),
            aware_at=utcnow() - timedelta(hours=1),
            data_categories=["email"],
            actor="test",
        )
        key = incident.key
        # Rich markup in a value once became a real link or colours in a table or title.
        marked = commands.declare(
            session,
            title=MARKUP,
            description="markup",
            severity=Severity.HIGH,
            detected_at=utcnow() - timedelta(hours=2),
            aware_at=utcnow() - timedelta(hours=1),
            data_categories=["email"],
            actor=MARKUP,
        ).key
    for command in (["list"], ["show", key], ["timeline", key], ["show", marked]):
        shown = breach(*command, COLUMNS="400", FORCE_COLOR="1")  # Rich writes colours
        assert shown.returncode == 0, shown.stderr
        if command[-1] == marked:
            assert MARKUP in shown.stdout, shown.stdout  # shown as the characters it is
        assert "evil.example" in shown.stdout, command  # the text is shown...
        # ...but nothing of it drives the terminal: only Rich's own colour codes (SGR).
        assert not re.search(r"\x1b(?!\[[0-9;]*m)", shown.stdout), (command, shown.stdout)
        assert not re.search(r"[\x07\x9b\u202e]", shown.stdout), command
