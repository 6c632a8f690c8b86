"""The CLI as on-call reads it at 80 columns (issue 18, item 3): help without Typer's type
noise, step ids never cut, a step's instructions on demand, and JSON for scripts."""

from __future__ import annotations

import contextlib
import io
import json
import re

import typer
from typer.testing import CliRunner

from breachflow.cli.app import app
from breachflow.cli.terminal import readable_help
from breachflow.flows.approve import runbook as runbooks
from breachflow.models import commands
from tests.conftest import SQLITE_ONLY
from tests.models.test_timeline import declare_with_events

NARROW = {"COLUMNS": "80"}


def _commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", {})
    found = [path] if not subs else []
    for name, sub in subs.items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_s_help_names_values_plainly(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    command = readable_help(typer.main.get_command(app))
    every = _commands(command)
    assert ("step",) in every and ("audit", "verify") in every and len(every) > 30
    for path in every:
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
            command.main(args=[*path, "--help"], prog_name="breach", standalone_mode=False)
        text = shown.getvalue()
        assert "Usage: breach " + " ".join(path) in text, path
        noise = re.findall(r"<(?:str|bool|int|float|path|list\[[^>]*\])>|\{[a-z_]+\}", text)
        assert not noise, (path, noise)
        assert max(map(len, text.splitlines())) <= 80, path
    step = io.StringIO()
    with contextlib.redirect_stdout(step), contextlib.suppress(SystemExit):
        command.main(args=["step", "--help"], prog_name="breach", standalone_mode=False)
    assert re.search(r"--note\s+TEXT", step.getvalue())
    assert re.search(r"--evidence\s+PATH", step.getvalue())
    assert re.search(r"--done\s+Mark it done", step.getvalue())  # a flag takes no value


@SQLITE_ONLY
def test_the_runbook_reads_at_80_columns_and_as_json(db, settings):
    key = declare_with_events(db)
    runner = CliRunner()
    shown = runner.invoke(app, ["runbook", key], env=NARROW)
    assert shown.exit_code == 0, shown.output
    with db.unit_of_work() as session:
        items = runbooks.checklist(session, commands.get_incident(session, key))
    lines = shown.output.splitlines()
    for item in items:  # every id whole, at the start of its line, ready to type
        assert any(line.strip().startswith(item.step.id + " ") for line in lines), item.step.id
    assert "…" not in shown.output
    assert max(map(len, lines)) <= 80

    data = json.loads(runner.invoke(app, ["runbook", key, "--json"], env=NARROW).stdout)
    assert data["incident"] == key
    assert [s["id"] for s in data["steps"]] == [i.step.id for i in items]
    gate = next(s for s in data["steps"] if s["gates"] == "notify")
    assert gate["role"] == "oncall" and gate["instructions"].strip()

    read = runner.invoke(app, ["step", key, gate["id"], "--show"], env=NARROW)
    assert read.exit_code == 0, read.output
    assert gate["title"] in read.output and "owner: oncall" in read.output
    first_words = " ".join(gate["instructions"].split()[:4])
    assert first_words.replace("`", "") in " ".join(read.output.split())
    unknown = runner.invoke(app, ["step", key, "no-such-step", "--show"], env=NARROW)
    assert unknown.exit_code == 2 and "has no step 'no-such-step'" in unknown.output


@SQLITE_ONLY
def test_list_as_json_has_the_api_s_fields(db, settings):
    key = declare_with_events(db)
    listed = CliRunner().invoke(app, ["list", "--json"], env=NARROW)
    assert listed.exit_code == 0, listed.output
    (incident,) = json.loads(listed.stdout)
    assert incident["key"] == key and incident["state"] == "assessed"
    assert incident["title"] == "Support credential misuse"
    narrow = CliRunner().invoke(app, ["list"], env=NARROW)
    assert any(line.startswith(f"│ {key} ") for line in narrow.output.splitlines())
