"""``breach subjects import`` with a live progress bar (bytes, rows and rows per second)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from breachflow.flows.assess.subjects import ImportReport, import_subjects
from breachflow.models import commands, runtime


def import_with_progress(
    key: str,
    file: Path,
    encoding: str | None,
    mapping: dict[str, str],
    actor: str,
    console: Console,
) -> ImportReport:
    config = runtime.settings()
    keys = runtime.vault()
    progress = Progress(
        TextColumn("[bold]Importing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows · {task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
    )
    bar = progress.add_task("import", total=None, rows=0, rate=0.0)
    started = time.monotonic()

    def update(rows: int, done: int, total: int) -> None:
        rate = rows / max(time.monotonic() - started, 1e-6)
        progress.update(bar, completed=done, total=total, rows=rows, rate=rate)

    with progress, runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return import_subjects(
            session,
            incident,
            file,
            actor=actor,
            vault=keys,
            default_locale=config.default_locale,
            rejects_dir=config.home / "rejects",
            encoding=encoding,
            mapping=mapping,
            workers=config.import_workers,
            on_progress=update,
        )
