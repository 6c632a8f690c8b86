"""``breach runbook``, ``breach step`` and ``breach approve``: on-call's checklist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from breachflow.cli.common import Key, actor, console, fmt
from breachflow.cli.terminal import SafeTable, styled
from breachflow.flows.approve import runbook as runbooks
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow

#: Whoever runs the CLI holds the database and the data key: an admin (SECURITY.md).
CLI_ROLE = "admin"
Note = Annotated[str | None, typer.Option(help="What was done or decided, for the record.")]


def runbook(key: Key) -> None:
    """The incident's checklist: every step with its owner, due time and what is overdue."""
    now = utcnow()
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        items = runbooks.checklist(session, incident)
        waiting = runbooks.waiting_for(session, incident, "notify")
        session.expunge_all()
    table = SafeTable(title=f"{incident.key} runbook", title_justify="left")
    for column in ("phase", "step", "title", "owner", "due", "status"):
        table.add_column(column)
    for item in items:
        if item.done_at:
            status = f"[green]done[/] {fmt(item.done_at)} by {escape(item.done_by or '')}"
        elif item.not_applicable:
            status = f"[dim]does not apply: {escape(item.not_applicable)}[/]"
        elif item.overdue(now):
            status = "[red]OVERDUE[/]"
        else:
            status = "open"
        gate = {"notify": " (gates notification)", "close": " (gates closing)"}.get(
            item.step.gates or "", ""
        )
        due = fmt(item.due_at) if item.due_at else "when its anchor is known"
        table.add_row(
            item.phase, item.step.id, item.step.title + gate, item.step.role, due, styled(status)
        )
    console.print(table)
    if waiting:
        console.print(f"[yellow]Notification waits for[/] {waiting}")
    console.print(f"Mark a step done: breach step {incident.key} STEP --done --note '...'")


def step(
    key: Key,
    step_id: Annotated[str, typer.Argument(metavar="STEP", help="The step's id.")],
    done: Annotated[bool, typer.Option("--done", help="Mark it done.")] = False,
    note: Note = None,
    evidence: Annotated[
        Path | None, typer.Option(help="A file kept with the record (hashed), e.g. a receipt.")
    ] = None,
) -> None:
    """Record that a runbook step is done, by you, with a note and evidence."""
    if not done:
        raise typer.BadParameter("say --done to mark the step done", param_hint="--done")
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        row = runbooks.mark_done(session, incident, step_id, actor(), note=note, evidence=evidence)
        kept = row.evidence_file
    console.print(f"{key.upper()}: {step_id} done" + (f"; evidence kept as {kept}" if kept else ""))


def approve(
    key: Key,
    gate: Annotated[str, typer.Argument(help="What is approved: notice.")],
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
