"""``breach letters``: letters through a mailing vendor, and what the vendor sends back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breachflow.cli.common import Key, actor, console
from breachflow.cli.terminal import SafeTable
from breachflow.flows.notify.returns import import_returns
from breachflow.models import commands, runtime
from breachflow.models.incident import IncidentState

letters_app = typer.Typer(
    help="Letters through a mailing vendor: import its return file.", no_args_is_help=True
)
SHOWN_ERRORS = 20


@letters_app.command("returns")
def returns(
    key: Key,
    file: Annotated[
        Path, typer.Argument(help="The vendor's return CSV: reference, status, date, reason.")
    ],
) -> None:
    """Import the mailing vendor's return file: mailed letters become sent (from the date
    mailed), undeliverable ones move their person to the next channel or leave them
    unreachable with the reason. Safe to import again; bad lines are listed, not applied."""
    report = import_returns(key, file, actor())
    outcome = report.outcome
    console.print(
        f"{key.upper()}: {_count(report.lines, 'line')} read ({report.file}):"
        f" [green]{outcome['mailed']:,} mailed[/] (now sent),"
        f" {report.undeliverable:,} undeliverable ({outcome['fell_back']:,} moved to their"
        f" next channel, {outcome['unreachable']:,} unreachable),"
        f" {outcome['unchanged']:,} unchanged, [red]{len(report.errors):,} with errors[/]",
        highlight=False,
    )
    if report.errors:
        table = SafeTable("line", "error", title="Not applied", title_justify="left")
        for line, error in report.errors[:SHOWN_ERRORS]:
            table.add_row(str(line), error)
        if len(report.errors) > SHOWN_ERRORS:
            table.add_row("…", f"{len(report.errors) - SHOWN_ERRORS} more")
        console.print(table)
    with runtime.database().unit_of_work() as session:
        notifying = commands.get_incident(session, key).state == IncidentState.NOTIFYING
    if report.with_vendor:
        console.print(f"Still with the mailing vendor: {_count(report.with_vendor, 'letter')}.")
    elif notifying:
        console.print(f"No letter is with the vendor now: `breach run {key.upper()}` goes on.")
    if report.lines and not report.used:
        raise typer.Exit(1)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
