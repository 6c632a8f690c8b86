"""``breach update``, ``assess`` and ``obligations``: who must be told what, by when."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from breachflow.cli.common import Key, Risk, actor, console, fmt, parse_time
from breachflow.cli.terminal import SafeTable
from breachflow.models import commands, runtime
from breachflow.models.chain import parse_chain
from breachflow.models.errors import BreachError
from breachflow.models.incident import IncidentState


def update(
    key: Key,
    risk: Annotated[Risk | None, typer.Option(help="Risk to the people.")] = None,
    detected_at: Annotated[str | None, typer.Option()] = None,
    aware_at: Annotated[str | None, typer.Option()] = None,
    discovered_at: Annotated[str | None, typer.Option()] = None,
    determined_at: Annotated[str | None, typer.Option()] = None,
    assessed_at: Annotated[str | None, typer.Option()] = None,
    contained_at: Annotated[str | None, typer.Option()] = None,
    handling_ended_at: Annotated[str | None, typer.Option()] = None,
    classified_major_at: Annotated[
        str | None, typer.Option(help="When the incident was classified as major (DORA).")
    ] = None,
    corrective_measure_at: Annotated[
        str | None,
        typer.Option(help="When a corrective or mitigating measure was available (CRA)."),
    ] = None,
    encrypted_key_safe: Annotated[bool | None, typer.Option()] = None,
    improper_purpose: Annotated[bool | None, typer.Option()] = None,
    material: Annotated[bool | None, typer.Option(help="SEC materiality determination.")] = None,
    channels: Annotated[
        str | None,
        typer.Option(
            help="This incident's fallback chain, e.g. push,email,sms,voice,letter "
            "(default: the policy's channels, in order)."
        ),
    ] = None,
) -> None:
    """Change the facts the assessment depends on (recorded with old and new values)."""
    given = {name: value for name, value in locals().items() if name != "key" and value is not None}
    if "channels" in given:
        given["channel_chain"] = [str(c) for c in parse_chain(given.pop("channels").split(","))]
    changes = {
        name: parse_time(value, f"--{name.replace('_', '-')}") if name.endswith("_at") else value
        for name, value in given.items()
    }
    if "risk" in changes:
        changes["risk"] = changes["risk"].value
    if not changes:
        raise typer.BadParameter("nothing to update; see breach update --help")
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        changed = commands.update_incident(session, incident, actor(), changes)
        assessed = incident.has_reached(IncidentState.ASSESSED) or incident.assessed_at
    for name, values in changed.items():
        console.print(f"{key}: {name} {values['from']} → {values['to']}")
    if not changed:
        console.print(f"{key}: nothing changed")
    elif assessed:
        console.print(f"Deadlines may have moved: `breach assess {key}` re-assesses.")


def assess(
    key: Key,
    show_all: Annotated[bool, typer.Option("--all", help="Also list what does not apply.")] = False,
) -> None:
    """Assess the incident against every regime now and print its obligations."""
    from breachflow.flows.assess.assessment import assess as assess_incident
    from breachflow.flows.report.filing import start_waiting

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        if incident.state == IncidentState.CLOSED:
            raise BreachError(f"{incident.key} is closed; its last assessment stands")
        assessment = assess_incident(session, incident, actor(), runtime.settings())
        start_waiting(session, incident, actor())
        window = incident.notice_deadline
    _print_obligations(key, assessment, window, show_all)


def obligations(
    key: Key,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also list what does not apply.")] = False,
) -> None:
    """The obligations of the incident's latest assessment (rules as they were then)."""
    from breachflow.models.assessment import latest_assessment

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assessment = latest_assessment(session, incident.id)
        window = incident.notice_deadline
    if assessment is None:
        raise BreachError(f"{key} has not been assessed yet: run `breach assess {key}`")
    if as_json:
        document = {
            "incident": incident.key,
            "assessed_at": assessment.assessed_at.isoformat().replace("+00:00", "Z"),
            "assessment": assessment.number,
            "ruleset_fingerprint": assessment.ruleset_fingerprint,
            "notice_deadline": window.isoformat().replace("+00:00", "Z") if window else None,
            "obligations": assessment.obligations,
        }
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return
    _print_obligations(key, assessment, window, show_all)


def _print_obligations(key: str, assessment, window, show_all: bool) -> None:
    from zoneinfo import ZoneInfo

    from breachflow.models.base import utcnow

    now = utcnow()
    table = SafeTable(
        "regime", "sure", "audience", "phase", "deadline (UTC)", "local", "left", "why",
        "content",
        title=f"{key} obligations (assessment {assessment.number}, {fmt(assessment.assessed_at)})",
        title_justify="left",
    )  # fmt: skip
    skipped = []
    doubts = set()
    for o in assessment.obligations:
        if not o["applies"]:
            skipped.append(o)
            continue
        if o["deadline"]:
            due = datetime.fromisoformat(o["deadline"])
            local = due.astimezone(ZoneInfo(o["timezone"])).strftime(
                f"%Y-%m-%d %H:%M {o['timezone']}"
            )
            left = _left(due - now)
            deadline = fmt(due)
        else:
            deadline, local, left = o["deadline_rule"], "", ""
        sure = o.get("confidence") or ""
        if sure in ("~", "U"):
            doubts.add(o["regime"])
        audience = o["audience"] + (f" {o['place']}" if o.get("place") else "")
        phase = o["phase"] + (f": {o['title']}" if o.get("title") else "")
        table.add_row(
            o["regime"], sure, audience, phase, deadline, local, left, o["reason"],
            " ".join(o["content_fields"]),
        )  # fmt: skip
    console.print(table)
    if doubts:
        console.print(
            "Sure: ✓ checked in the official text, ~ from a secondary source, U unverified"
            " (a default the operator may override). Counsel to review: "
            + ", ".join(sorted(doubts))
        )
    window_text = fmt(window) if window else "no fixed deadline: set one in the policy"
    console.print(f"Notification window for individuals: {window_text}")
    if show_all:
        for o in skipped:
            console.print(f"  not applicable: {o['regime']} {o['audience']}: {o['reason']}")
    else:
        regimes = sorted(
            {o["regime"] for o in skipped}
            - {o["regime"] for o in assessment.obligations if o["applies"]}
        )
        console.print(f"Considered, not applicable: {', '.join(regimes)} (--all for reasons)")


def _left(delta) -> str:
    seconds = delta.total_seconds()
    if seconds < 0:
        return f"[red]overdue {int(-seconds // 86400)}d {int(-seconds % 86400 // 3600)}h[/]"
    return f"{int(seconds // 86400)}d {int(seconds % 86400 // 3600)}h"
