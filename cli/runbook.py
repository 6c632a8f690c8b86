"""``breach runbook``, ``breach step`` and ``breach approve``: on-call's checklist."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.padding import Padding
from rich.text import Text

from breachflow.cli.common import Key, actor, console, fmt
from breachflow.cli.terminal import print_json, styled
from breachflow.flows.approve import runbook as runbooks
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow

#: Whoever runs the CLI holds the database and the data key: an admin (SECURITY.md).
CLI_ROLE = "admin"
Note = Annotated[str | None, typer.Option(help="What was done or decided, for the record.")]


def runbook(
    key: Key,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the checklist as JSON, for scripts.")
    ] = False,
) -> None:
    """The incident's checklist: every step with its owner, due time and what is overdue."""
    now = utcnow()
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        if as_json:
            print_json(runbooks.checklist_data(session, incident, now))
            return
        items = runbooks.checklist(session, incident)
        waiting = runbooks.waiting_for(session, incident, "notify")
        session.expunge_all()
    # A list, not a table: at 80 columns a table of five columns cut ids and titles to
    # nothing. Each step: its id (what on-call types next) and status, then what it is.
    console.print(Text(f"{incident.key} runbook", style="bold"))
    phase = None
    for item in items:
        if item.phase != phase:
            phase = item.phase
            console.print(Text(f"\n{phase}", style="bold underline"))
        due = fmt(item.due_at) if item.due_at else "when its anchor is known"
        line = Text.assemble((item.step.id, "bold"), "  ", _status(item, now))
        console.print(Padding(line, (0, 0, 0, 2)))  # wrapped lines keep the indent
        what = Text(f"{_title(item)} · {item.step.role} · due {due}", style="dim")
        console.print(Padding(what, (0, 0, 0, 4)))
    if waiting:
        console.print(f"[yellow]Notification waits for[/] {escape(waiting)}")
    console.print(
        f"A step's instructions: breach step {incident.key} STEP --show; mark it done:"
        f" breach step {incident.key} STEP --done --note '...'",
        highlight=False,
    )


def _title(item: runbooks.ChecklistItem) -> str:
    gate = {"notify": " (gates notification)", "close": " (gates closing)"}
    return item.step.title + gate.get(item.step.gates or "", "")


def _status(item: runbooks.ChecklistItem, now: datetime) -> Text:
    if item.done_at:
        return styled(f"[green]done[/] {fmt(item.done_at)} by {escape(item.done_by or '')}")
    if item.not_applicable:
        return styled(f"[dim]does not apply: {escape(item.not_applicable)}[/]")
    return styled("[red]OVERDUE[/]") if item.overdue(now) else styled("open")


def step(
    key: Key,
    step_id: Annotated[str, typer.Argument(metavar="STEP", help="The step's id.")],
    done: Annotated[bool, typer.Option("--done", help="Mark it done.")] = False,
    show: Annotated[
        bool, typer.Option("--show", help="Show the step's instructions and where it stands.")
    ] = False,
    note: Note = None,
    evidence: Annotated[
        Path | None, typer.Option(help="A file kept with the record (hashed), e.g. a receipt.")
    ] = None,
) -> None:
    """Show a runbook step's instructions (--show), or record that it is done, by you, with
    a note and evidence (--done)."""
    if show:
        _show(key, step_id)
        return
    if not done:
        raise typer.BadParameter(
            "say --done to mark the step done, or --show to read it", param_hint="--done"
        )
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        row = runbooks.mark_done(session, incident, step_id, actor(), note=note, evidence=evidence)
        kept = row.evidence_file
    console.print(f"{key.upper()}: {step_id} done" + (f"; evidence kept as {kept}" if kept else ""))


def _show(key: str, step_id: str) -> None:
    """The step as on-call reads it: title, owner, due time, status, then the instructions
    rendered from the runbook's Markdown."""
    now = utcnow()
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        items = runbooks.checklist(session, incident)
        session.expunge_all()
    item = next((i for i in items if i.step.id == step_id), None)
    if item is None:
        known = ", ".join(i.step.id for i in items)
        raise typer.BadParameter(f"{incident.key} has no step {step_id!r}; its steps: {known}")
    due = fmt(item.due_at) if item.due_at else "when its anchor is known"
    console.print(Text(f"{incident.key} · {item.phase} · {item.step.id}", style="bold"))
    console.print(Text(_title(item)))
    console.print(Text.assemble("owner: ", item.step.role, "   due: ", due, "   status: "), end="")
    console.print(_status(item, now))
    if item.step.evidence:
        console.print("evidence: required (--evidence FILE)")
    console.print()
    console.print(Markdown(item.step.instructions or "_No instructions for this step._"))


def approve(
    key: Key,
    gate: Annotated[
        str, typer.Argument(help="What is approved: notice, or closure (the sign-off).")
    ],
    note: Note = None,
    run: Annotated[
        bool, typer.Option(help="Continue the response right away (default), or only record it.")
    ] = True,
) -> None:
    """Approve the notice texts and the decision to notify, then continue the response."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        step_id = runbooks.approve(session, incident, gate, actor(), CLI_ROLE, note).step
    console.print(f"{key.upper()}: {gate} approved ({step_id}) by {actor()}.")
    if run:
        from breachflow.cli.common import print_summary
        from breachflow.cli.progress import run_with_progress

        print_summary(run_with_progress(key, actor(), console))
