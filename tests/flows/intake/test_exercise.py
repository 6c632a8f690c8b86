"""Tabletop exercises (issue 18, item 7), with the settings live (a real SMTP server on
loopback): the exercise's people are notified only in its own sandbox, on-call is warned
for real but marked EXERCISE, its clock moves on until a deadline falls due, and it ends
with a scored report. Both example scenarios load."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from breachflow import shipped
from breachflow.cli.app import app
from breachflow.flows.incident import incident_response
from breachflow.flows.intake import exercise
from breachflow.flows.watchdog import deadline_watchdog
from breachflow.models import commands, runtime
from breachflow.models.errors import InvalidInput
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")
SCENARIOS = shipped("examples") / "exercises"


def test_both_example_scenarios_load():
    loaded = {path.name: exercise.load(path)[0] for path in sorted(SCENARIOS.glob("*.yaml"))}
    assert set(loaded) == {"lost-laptop.yaml", "stuffing.yaml"}
    assert loaded["stuffing.yaml"].opened_by == "alert"
    assert loaded["lost-laptop.yaml"].opened_by == "declared"


def test_an_exercise_runs_for_real_but_reaches_no_one_outside(db, settings, live_smtp, monkeypatch):
    monkeypatch.setenv("BREACH_ONCALL_EMAILS", '["oncall@example.com"]')
    runtime.reset()
    runner = CliRunner()
    started = runner.invoke(
        app, ["exercise", "start", "--scenario", str(SCENARIOS / "lost-laptop.yaml")]
    )
    assert started.exit_code == 0, started.output
    key = re.search(r"EXERCISE (INC-\d{4}-\d{4}) started", started.output).group(1)

    incident_response(key, requested_by="test")  # live settings: SMTP on loopback
    outbox = runtime.settings().home / "exercises" / key / "outbox"
    sandboxed = {folder.name: len(list(folder.iterdir())) for folder in outbox.iterdir()}
    assert (
        sandboxed["email"] >= 20 and sum(sandboxed.values()) >= 40
    )  # 50 people, a few unreachable
    assert live_smtp.received == []  # nobody reached through the real mail server
    packs = list(runtime.settings().reports.rglob(f"*{key}*.html"))
    assert packs, "the urgent regulator reports are written"
    for pack in packs:  # written, marked, never submitted
        assert "EXERCISE — a tabletop exercise, not a real report" in pack.read_text()

    moved = runner.invoke(app, ["exercise", "advance", key, "--hours", "80"])
    assert moved.exit_code == 0, moved.output
    run = deadline_watchdog()
    assert run.alerts and all(alert.exercise for alert in run.alerts)
    (warning,) = live_smtp.by_recipient()["oncall@example.com"]  # staff: for real, marked
    assert warning["Subject"].startswith("[EXERCISE] ")
    assert f"[EXERCISE] {key}:" in warning.get_content()

    ended = runner.invoke(app, ["exercise", "end", key])
    assert ended.exit_code == 0, ended.output
    report = runtime.settings().home / "exercises" / key / "report.json"
    score = json.loads(report.read_text())
    assert score["fast_forwarded_hours"] == 80
    assert score["summary"]["minutes_to_first_notice"] is not None
    assert score["summary"]["deadlines_missed"] >= 1  # 80 h moved on: the 72 h went by
    assert "| time to the first notice (sandbox) |" in ended.output
    kinds = timeline_kinds(db, key)
    for kind in ("exercise.started", "exercise.fast_forwarded", "exercise.ended"):
        assert kind in kinds
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.exercise and incident.title.startswith("EXERCISE: ")


def test_a_real_incident_s_clock_cannot_be_moved(db, settings):
    key = seed_incident(db, runtime.settings(), people(2))
    with pytest.raises(InvalidInput, match="is not an exercise"):
        exercise.fast_forward(key, 24, "test")
