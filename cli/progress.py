"""Run the response flow with a live progress bar fed by the ledger, not by the flow.

The flow runs in this thread; a poller thread reads per-person counts from the database every
half second. Whatever executes the sends, the bar shows what the ledger says is done.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from breachflow.models import ledger
from breachflow.models.commands import get_incident
from breachflow.models.runtime import database

if TYPE_CHECKING:  # flows.runs imports Prefect: a second of every `breach` start-up
    from breachflow.flows.runs import ResponseSummary


def run_with_progress(incident_key: str, requested_by: str, console: Console) -> ResponseSummary:
    from breachflow.flows.incident import incident_response

    stop = threading.Event()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    bar = progress.add_task("Preparing", total=None, detail="")

    def poll() -> None:
        # A look counts the whole ledger (0.6 s at a million people): look again after
        # ten times as long as the last look took, so the bar costs the database a tenth.
        pause = 0.5
        while not stop.wait(pause):
            started = time.monotonic()
            with database().unit_of_work() as session:
                incident = get_incident(session, incident_key)
                people = ledger.people(session, incident)
                waiting = ledger.counts(session, incident).get("failed_temporary", 0)
            pause = max(0.5, 10 * (time.monotonic() - started))
            if not people.affected:
                continue
            detail = f"{people.unreachable} unreachable" if people.unreachable else ""
            if waiting:
                detail += f" {waiting} waiting to retry"
            progress.update(
                bar,
                description="Notifying",
                total=people.affected,
                completed=people.settled,
                detail=detail.strip(),
            )

    poller = threading.Thread(target=poll, name="ledger-progress", daemon=True)
    with progress:
        poller.start()
        outcome = "Stopped"
        try:
            summary = incident_response(incident_key, requested_by=requested_by)
            outcome = "Notified"
            return summary
        finally:
            stop.set()
            poller.join()
            with database().unit_of_work() as session:
                people = ledger.people(session, get_incident(session, incident_key))
            progress.update(
                bar,
                description=outcome,
                total=people.affected,
                completed=people.settled,
                visible=people.affected > 0,
            )
