"""``breach exercise start | advance | end``: tabletop exercises (flows/intake/exercise.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from breachflow.cli.common import Key, actor, console
from breachflow.cli.demo import generate_people

exercise_app = typer.Typer(
    help="Tabletop exercises: a simulated incident with the real runbooks, gates, watchdog"
    " and paging; people's notices only to the sandbox; everything marked EXERCISE.",
    no_args_is_help=True,
)


@exercise_app.command("start")
def start(
    scenario: Annotated[
        Path,
        typer.Option(help="A scenario file, e.g. examples/exercises/credential-stuffing.yaml."),
    ],
) -> None:
    """Open the exercise's incident from the scenario, with its generated people."""
    from breachflow.flows.intake import exercise  # Prefect, through the watchdog: on use only

    chosen, texts = exercise.load(scenario)
    with tempfile.TemporaryDirectory() as folder:
        people = Path(folder) / "people.csv"
        generate_people(people, chosen.people, chosen.seed)  # reserved example domains
        key = exercise.start(chosen, texts, people, actor())
    opened = "suspected: triage it" if chosen.opened_by == "alert" else "declared"
    console.print(
        f"EXERCISE {key} started ({opened}): {chosen.name}. Work it as a real one (breach"
        f" triage, breach runbook {key}, breach run {key}); move its clock with breach exercise"
        f" advance {key} --hours 48; end it with breach exercise end {key}.",
        highlight=False,
    )


@exercise_app.command("advance")
def advance(
    key: Key,
    hours: Annotated[float, typer.Option(help="How far to move the exercise's clock on.")],
) -> None:
    """Move the exercise's clock on: its anchors move back, so its deadlines fall due."""
    from breachflow.flows.intake import exercise

    moved = exercise.fast_forward(key, hours, actor())
    console.print(f"EXERCISE {moved['incident']}: the clock moved on by {hours:g} h.")


@exercise_app.command("end")
def end(key: Key) -> None:
    """End the exercise with its scored report (Markdown and JSON)."""
    from breachflow.flows.intake import exercise

    report = exercise.end(key, actor())
    console.print(report.read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"Report written to {report} (and report.json beside it).", highlight=False)
