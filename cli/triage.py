"""``breach alerts add-source | list | rotate | revoke``, ``breach triage``, ``breach
confirm``, ``breach dismiss``: what monitoring opened, and a person's decision about it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from breachflow.cli.common import Key, actor, console, errors, fmt, parse_time
from breachflow.cli.terminal import SafeTable
from breachflow.models import commands, runtime

alerts_app = typer.Typer(help="Alert intake: sources that may post alerts.", no_args_is_help=True)
Reason = Annotated[str, typer.Option("--reason", help="Why: it goes on the timeline.")]


@alerts_app.command("add-source")
def add_source(name: Annotated[str, typer.Argument(help="e.g. siem, ids.")]) -> None:
    """A source of signed alerts (POST /api/v1/alerts); prints its secret, once."""
    from breachflow.flows.intake.sources import add_source as add

    secret = add(name, actor())
    sys.stdout.write(secret + "\n")
    errors.print(
        f"Source {name!r} created. It signs each request with this secret (HMAC-SHA256 over"
        " '<timestamp>.<body>'); store it now: it will not be shown again."
    )


@alerts_app.command("list")
def list_sources() -> None:
    """Every alert source: created, rotated (and until when its old secret signs), revoked.
    Never a secret."""
    from breachflow.flows.intake.sources import list_sources as listed

    table = SafeTable(title="Alert sources", title_justify="left")
    for column in ("name", "status", "created", "by", "rotated", "old secret until", "revoked"):
        table.add_column(column)
    for s in listed():
        revoked = f"{fmt(s.revoked_at)} by {s.revoked_by}" if s.revoked_at else "—"
        table.add_row(
            s.name,
            s.status,
            fmt(s.created_at),
            s.created_by,
            fmt(s.rotated_at),
            fmt(s.previous_valid_until),
            revoked,
        )
    console.print(table)


@alerts_app.command("rotate")
def rotate_source(
    name: Annotated[str, typer.Argument(help="The source's name.")],
    grace_hours: Annotated[
        float, typer.Option(help="How long the old secret still signs (0 to 720 hours).")
    ] = 24,
) -> None:
    """A new secret for a source; prints it, once. The old one signs for the grace period."""
    from datetime import timedelta

    from breachflow.flows.intake.sources import rotate_source as rotate

    secret = rotate(name, actor(), timedelta(hours=grace_hours))
    sys.stdout.write(secret + "\n")
    errors.print(
        f"Source {name!r} has a new secret; the old one signs for {grace_hours:g} more hours."
        " Store it now: it will not be shown again."
    )


@alerts_app.command("revoke")
def revoke_source(name: Annotated[str, typer.Argument(help="The source's name.")]) -> None:
    """Revoke a source: no secret of it signs from now on."""
    from breachflow.flows.intake.sources import revoke_source as revoke

    revoke(name, actor())
    console.print(f"Alert source {escape(name)!r} revoked.")


def triage() -> None:
    """Suspected incidents opened by alerts, with how many alerts each has had."""
    with runtime.database().unit_of_work() as session:
        rows = commands.suspected(session)
        session.expunge_all()
    if not rows:
        console.print("Nothing to triage.")
        return
    table = SafeTable(title="Suspected incidents", title_justify="left")
    for column in ("key", "title", "severity", "source", "alerts", "status", "first", "last"):
        table.add_column(column)
    for incident, group in rows:
        table.add_row(
            incident.key,
            incident.title,
            str(incident.severity),
            group.source if group else "—",
            str(group.received) if group else "—",
            group.status if group else "—",
            fmt(group.first_seen) if group else "—",
            fmt(group.last_seen) if group else "—",
        )
    console.print(table)
    console.print("Decide each: breach confirm KEY --reason ... | breach dismiss KEY --reason ...")


def confirm(
    key: Key,
    reason: Reason,
    aware_at: Annotated[
        str | None, typer.Option(help="When we knew it was a breach (default: now).")
    ] = None,
) -> None:
    """Triage: it is a breach. It becomes a declared incident; awareness clocks start."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        commands.confirm(session, incident, actor(), reason, parse_time(aware_at, "--aware-at"))
    console.print(
        f"{key.upper()} is declared. Next: breach notice set, breach subjects import, breach run."
    )


def dismiss(key: Key, reason: Reason) -> None:
    """Triage: not a breach. It stays on the record, dismissed."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        commands.dismiss(session, incident, actor(), reason)
    console.print(f"{key.upper()} dismissed; the reason is on its timeline.")


public_app = typer.Typer(
    help="Reports from the public of leaked personal data (POST /api/v1/reports, /report).",
    no_args_is_help=True,
)


@public_app.command("list")
def public_list() -> None:
    """Reports from the public waiting for triage, oldest first (no contact details)."""
    from breachflow.flows.intake.public_reports import queue

    rows = queue()
    if not rows:
        console.print("No report from the public waits for triage.")
        return
    table = SafeTable(title="Reports from the public", title_justify="left")
    for column in ("reference", "received", "what happened", "data involved", "acknowledged"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.reference,
            fmt(row.received_at),
            row.what_happened[:300],
            row.data_involved or "—",
            "yes" if row.acknowledged else "NO (email not sent)",
        )
    console.print(table)
    console.print("Attach one to an incident: breach public attach REFERENCE INC-…")


@public_app.command("attach")
def public_attach(
    reference: Annotated[str, typer.Argument(help="e.g. PR-1A2B3C4D.")], key: Key
) -> None:
    """Attach a report from the public to an incident (on its timeline)."""
    from breachflow.flows.intake.public_reports import attach

    attach(reference, key, actor())
    console.print(f"{reference.upper()} attached to {key.upper()}.")
