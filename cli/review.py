"""``breach show``, ``list``, ``timeline`` and ``audit verify``: reviewing an incident."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.markup import escape
from sqlalchemy import select

from breachflow.cli.common import (
    Key,
    channel_label,
    console,
    errors,
    fmt,
    states_text,
    window_verdict,
)
from breachflow.cli.reporting import announcement_rows, reports_table
from breachflow.cli.terminal import SafeTable, print_json, styled
from breachflow.flows.approve.runbook import waiting_for
from breachflow.flows.close.obligations import open_obligations
from breachflow.flows.notify.forecast import Verdict, forecast
from breachflow.flows.notify.vendor import awaiting_returns
from breachflow.models import commands, ledger, runtime
from breachflow.models.anchor import (
    AnchorCheck,
    checkpoint_incidents,
    key_id,
    load_public_key,
    write_key_pair,
)
from breachflow.models.errors import BreachError
from breachflow.models.incident import Incident
from breachflow.models.regulator_report import reports
from breachflow.models.timeline import brief, events_of, verify_chain


def show(key: Key) -> None:
    """State, anchor times, deadline and counts per notification state."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        outcome = ledger.people(session, incident)
        by_channel = ledger.channel_counts(session, incident)
        notice = commands.latest_notice(session, incident)
        people = commands.count_subjects(session, incident)
        announcement = announcement_rows(session, incident.id)
        waiting = waiting_for(session, incident, "notify") or awaiting_returns(session, incident)
        still_open = open_obligations(session, incident)
        finished = ledger.notification_finished_at(session, incident)
        filed = reports(session, incident.id)
        ahead = forecast(session, incident, runtime.settings())
        session.expunge_all()
    table = SafeTable(
        show_header=False, title=f"{incident.key} — {incident.title}", title_justify="left"
    )
    table.add_row("state", str(incident.state))
    if waiting:
        table.add_row("waiting for", styled(f"[yellow]{escape(waiting)}[/]"))
    for number, obligation in enumerate(still_open, 1):
        table.add_row(
            "open before closing" if number == 1 else "", styled(f"[yellow]{escape(obligation)}[/]")
        )
    table.add_row("severity", str(incident.severity))
    table.add_row("data categories", ", ".join(incident.data_categories) or "—")
    table.add_row("detected", fmt(incident.detected_at))
    table.add_row("aware", fmt(incident.aware_at))
    table.add_row("contained", fmt(incident.contained_at))
    table.add_row("risk", incident.risk or "not assessed")
    for label, due in (
        ("notification window", incident.notice_deadline),
        ("policy deadline", incident.policy_deadline),
    ):
        table.add_row(label, styled(_deadline(due, incident, finished, outcome.reached)))
    table.add_row("closed", fmt(incident.closed_at))
    if incident.purge_after:
        purge = f"done {fmt(incident.purged_at)}" if incident.purged_at else "due"
        table.add_row("contact details purge", f"{fmt(incident.purge_after)} ({purge})")
    table.add_row("declared by", incident.declared_by)
    table.add_row("affected people", str(people))
    table.add_row("notice version", str(notice.version) if notice else "none (breach notice set)")
    if outcome.affected:
        table.add_row(
            "notification",
            f"{outcome.reached} reached, {outcome.unreachable} unreachable, "
            f"{outcome.pending} in progress",
        )
    for channel, states in by_channel.items():
        table.add_row(f"notices by {channel_label(channel)}", states_text(states))
    if ahead.verdict not in (Verdict.NOT_STARTED, Verdict.DONE):
        colour = "red" if ahead.verdict is Verdict.LATE else "green"
        table.add_row("forecast", styled(f"[{colour}]{escape(ahead.text())}[/]"))
    for label, value in announcement:
        table.add_row(label, value)
    table.add_row("timeline events", str(incident.timeline_length))
    console.print(table)
    if filed:
        console.print(reports_table(filed, "regulator reports"))
    elif incident.assessed_at:
        console.print("regulator reports: none filed yet")


def _deadline(
    due: datetime | None, incident: Incident, finished: datetime | None, notified: int
) -> str:
    """A deadline and where we stand against it: the dates that must not slip."""
    if due is None:
        if incident.assessed_at is None:
            return "set when assessed"
        return "no fixed deadline (see `breach obligations`)"
    return f"{fmt(due)} ({window_verdict(due, finished, notified)})"


def list_incidents(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the incidents as JSON, for scripts.")
    ] = False,
) -> None:
    """Every incident, newest first."""
    from sqlalchemy import select

    from breachflow.api.v1.incidents import IncidentOut

    with runtime.database().unit_of_work() as session:
        incidents = session.scalars(select(Incident).order_by(Incident.id.desc())).all()
    if as_json:  # the same fields as GET /api/v1/incidents
        print_json([IncidentOut.of(i).model_dump(mode="json") for i in incidents])
        return
    table = SafeTable("key", "state", "severity", "title", "aware", "notification window")
    for i in incidents:
        table.add_row(
            i.key, str(i.state), str(i.severity), i.title, fmt(i.aware_at), fmt(i.notice_deadline)
        )
    console.print(table)


def timeline(
    key: Key,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, hashes included.")] = False,
) -> None:
    """Every event of the incident, in order."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        events = list(events_of(session, incident))
    if as_json:
        rows = [
            {
                "seq": e.seq,
                "occurred_at": e.occurred_at.isoformat(),
                "recorded_at": e.recorded_at.isoformat(),
                "actor": e.actor,
                "kind": e.kind,
                "payload": e.payload,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in events
        ]
        sys.stdout.write(
            json.dumps({"incident": incident.key, "events": rows}, ensure_ascii=False, indent=2)
            + "\n"
        )
        return
    table = SafeTable(
        "#", "happened", "recorded", "actor", "kind", "details",
        title=f"{incident.key} timeline", title_justify="left",
    )  # fmt: skip
    for e in events:
        happened = "" if e.occurred_at == e.recorded_at else fmt(e.occurred_at)
        details = brief(e.payload, 200)
        table.add_row(str(e.seq), happened, fmt(e.recorded_at), e.actor, e.kind, details)
    console.print(table)


def audit_verify(
    key: Annotated[
        str | None,
        typer.Argument(metavar="KEY", help="Incident key, e.g. INC-2026-0001 (or --bundle)."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(help="Check an exported bundle (breach export --format bundle) offline."),
    ] = None,
    head: Annotated[
        str | None,
        typer.Option(
            help="With --bundle: the head hash `breach export` printed (or the export.written"
            " event shows); the bundle must end there."
        ),
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="A checkpoint public key (PEM) to trust, besides the configured key's (with"
            " --bundle, the only keys trusted); repeat for several."
        ),
    ] = None,
) -> None:
    """Recompute the timeline's hash chain and hold it to its signed checkpoints; exit 1 at
    the first broken event or checkpoint that does not hold.

    The checkpoints are read from the witness folder (BREACH_WITNESS_DIR) and from the
    copies in the database; the output names the anchor it trusted. With --bundle, no
    database is used: every file's SHA-256 is checked against the bundle's manifest and its
    timeline's chain against the head the manifest records.
    """
    if (key is None) == (bundle is None):
        raise typer.BadParameter(
            "give an incident key or --bundle FILE (one of them, not both)",
            param_hint="KEY / --bundle",
        )
    extra = [load_public_key(path) for path in public_key or []]
    if bundle is not None:
        _verify_bundle(bundle, head, extra)
        return
    if head is not None:
        raise typer.BadParameter("--head goes with --bundle", param_hint="--head")
    assert key is not None
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        check = verify_chain(session, incident)
        anchors = runtime.check_timeline_anchors(session, incident, extra)
    if not check.ok:
        errors.print(
            f"[red]{incident.key}: timeline BROKEN at event {check.broken_at}[/]: {check.reason}"
        )
    if anchors.problems:
        errors.print(f"[red]{incident.key}: timeline does NOT match its signed checkpoints[/]")
        for problem in anchors.problems:
            errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
    if not check.ok or anchors.problems:
        raise typer.Exit(1)
    events = f"{check.events} event{'' if check.events == 1 else 's'}"
    console.print(f"{incident.key}: timeline verified, {events}, head {check.head}")
    console.print(_anchor_line(anchors, check.events), highlight=False, soft_wrap=True)


def _anchor_line(anchors: AnchorCheck, events: int) -> str:
    latest = anchors.latest
    if latest is None:
        return (
            "  not anchored: no signed checkpoint of this timeline was found, so it is only as"
            " trustworthy as access to the database (see BREACH_CHECKPOINT_KEY_FILE and"
            " BREACH_WITNESS_DIR)"
        )
    line = (
        f"  anchored by {anchors.trusted}: the checkpoint of event {latest.events} signed"
        f" {latest.signed_at} by key {latest.key_id} holds"
    )
    if latest.events + 1 == events:
        line += f"; event {events} came after it and is not anchored yet"
    elif latest.events < events:
        line += f"; events {latest.events + 1}-{events} came after it and are not anchored yet"
    return line


def _verify_bundle(path: Path, head: str | None, keys: list[Ed25519PublicKey]) -> None:
    """Print what a bundle's check found; exit 1 on any problem."""
    from breachflow.flows.export.verify import verify_bundle

    check = verify_bundle(path, head, {key_id(public): public for public in keys})
    if check.ok:
        console.print(
            f"{path}: bundle of {check.incident} verified: files match the manifest "
            f"({check.files}); "
            f"timeline {check.events} events, head {check.head or '— (no events)'}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"  {check.anchor}", highlight=False, markup=False, soft_wrap=True)
        return
    errors.print(f"[red]{path}: bundle does NOT verify[/]", highlight=False, soft_wrap=True)
    for problem in check.problems:
        errors.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(1)


def audit_keygen(
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Where the private key goes.")],
) -> None:
    """Create the Ed25519 key that signs timeline checkpoints (FILE, 0600) and its public
    key (FILE.pub), which is all `audit verify --public-key` needs."""
    public = write_key_pair(path)
    console.print(
        f"signing key written to {path}; public key {public}", highlight=False, soft_wrap=True
    )
    errors.print(
        "Set BREACH_CHECKPOINT_KEY_FILE to it on every machine that runs flows, keep it off the"
        " database server, and give the public key to compliance."
    )


def audit_checkpoint(
    key: Annotated[
        str | None, typer.Argument(metavar="KEY", help="One incident (default: every open one).")
    ] = None,
) -> None:
    """Sign each timeline's current head now and publish it to the witness."""
    from breachflow.flows.watchdog import watched_incidents

    signing = runtime.anchoring()
    if signing is None:
        raise BreachError(
            "no checkpoint key: set BREACH_CHECKPOINT_KEY_FILE (create one with"
            " `breach audit keygen FILE`)"
        )
    db = runtime.database()
    with db.unit_of_work() as session:
        if key is not None:
            ids = [commands.get_incident(session, key).id]
        else:
            ids = list(
                session.scalars(
                    select(Incident.id).where(Incident.key.in_(watched_incidents(session)))
                )
            )
    taken = checkpoint_incidents(db, signing, dict.fromkeys(ids, "manual"))
    for checkpoint in taken:
        console.print(
            f"{checkpoint.incident}: event {checkpoint.events} (head {checkpoint.head}) signed,"
            f" published to {signing.witness.path(checkpoint.incident)}",
            highlight=False,
            soft_wrap=True,
        )
    if len(taken) < len(ids):
        console.print(f"{len(ids) - len(taken)} timeline(s) already checkpointed at their head.")
