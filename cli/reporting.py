"""``breach announce``, ``breach reports`` and ``breach report ...``: the public
announcement and the reports to regulators, decided, listed and recorded by a person."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from breachflow.cli.common import Key, actor, console, fmt, parse_time
from breachflow.cli.terminal import SafeTable, styled
from breachflow.models import commands, runtime
from breachflow.models.announcement import announcements, latest_decision
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.regulator_report import RegulatorReport, ReportState, reports

report_app = typer.Typer(
    help="Record what happened to a regulator report: filed, acknowledged, late.",
    no_args_is_help=True,
)

Reason = Annotated[str, typer.Option("--reason", help="Why: it goes on the timeline.")]
Regime = Annotated[str, typer.Argument(help="The regime, as `breach reports` lists it.")]
To = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="The recipient, where the regime reports to several (GDPR without an EU"
        " establishment: one per member state); part of its name, e.g. CNIL.",
    ),
]
Phase = Annotated[
    str | None,
    typer.Option(
        help="initial, supplementary or final; needed when more than one is open, else the"
        " open one."
    ),
]


def announce(
    key: Key,
    reason: Reason,
    waive: Annotated[
        bool, typer.Option("--waive", help="Decide that no announcement is made.")
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Publish a new version (the old ones stay up).")
    ] = False,
) -> None:
    """Decide the public announcement by hand, with a reason, and publish it.

    Without options: a named person decides an announcement is needed (e.g. individual
    notice is judged difficult or disproportionate) and it is published now. `--waive`
    records that none is made. `--update` publishes a new version of the current one.
    """
    from breachflow.flows.announce.decision import operator_decision
    from breachflow.flows.announce.publication import publish

    if waive and update:
        raise InvalidInput("--waive and --update contradict each other")
    if update:
        published = publish(key, actor(), update_reason=reason)
    else:
        required = operator_decision(key, actor(), reason, waive=waive)
        if not required:
            console.print(f"{key.upper()}: announcement waived; the reason is on the timeline.")
            return
        published = publish(key, actor())
    console.print(f"{key.upper()}: announcement version {published.version}")
    for name, outcome in published.destinations.items():
        where = outcome.get("location") or outcome.get("detail")
        console.print(f"  {name:<8} {outcome['status']}: {where}")
    console.print(f"  stays published until {fmt(published.ends_at)}")
    if not published.published_everywhere():
        raise typer.Exit(1)  # the failed destinations are retried by the next announce or run


def list_reports(key: Key) -> None:
    """The regulator reports of an incident with their deadlines and states."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = reports(session, incident.id)
        session.expunge_all()
    if not rows:
        console.print(f"{incident.key}: no regulator report is filed yet.")
        return
    console.print(reports_table(rows, f"{incident.key} regulator reports"))


def reports_table(rows: list[RegulatorReport], title: str) -> SafeTable:
    table = SafeTable(title=title, title_justify="left")
    for column in ("regime", "phase", "to", "deadline", "state", "filed", "reference", "pack"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.regime,
            r.phase + (f" #{r.number}" if r.number > 1 else ""),
            r.recipient,
            styled(_deadline(r)),
            styled(_state(r)),
            fmt(r.submitted_at) + (f" by {r.submitted_by}" if r.submitted_by else ""),
            r.reference or "—",
            r.files.get("pdf", "—"),
        )
    return table


def announcement_rows(session: Any, incident_id: int) -> list[tuple[str, str]]:
    """For ``breach show``: the decision and each version, with where it is published."""
    decision = latest_decision(session, incident_id)
    if decision is None:
        return [("announcement", "not decided yet")]
    verdict = "required" if decision.required else "not required"
    rows = [
        (
            "announcement",
            f"{verdict} ({decision.kind}, {decision.decided_by}, {fmt(decision.decided_at)}): "
            + ("; ".join(decision.grounds) or "no condition met"),
        )
    ]
    for version in announcements(session, incident_id):
        where = ", ".join(
            f"{name} {d['status']}" + (f" {d['location']}" if d.get("location") else "")
            for name, d in version.destinations.items()
        )
        rows.append(
            (
                f"  version {version.version}",
                f"{fmt(version.published_at)} until {fmt(version.ends_at)}: {where or 'pending'}",
            )
        )
    return rows


def submitted(
    key: Key,
    regime: Regime,
    reference: Annotated[str, typer.Option(help="The reference the regulator's portal gave.")],
    at: Annotated[
        str | None, typer.Option(help="When it was filed (ISO 8601); default: now.")
    ] = None,
    phase: Phase = None,
    to: To = None,
) -> None:
    """Record that a person filed a report on the regulator's portal."""
    from breachflow.flows.report.submission import record_submission

    when = parse_time(at, "--at") or utcnow()
    report = record_submission(
        key, regime, phase, reference=reference, at=when, actor=actor(), to=to
    )
    console.print(f"{key.upper()}: {report.label} submitted {fmt(when)}, reference {reference}")
    _still_open(key)


def _still_open(key: str) -> None:
    """After a filing: whether it was the last thing open, or how much is left."""
    from breachflow.flows.close.obligations import open_obligations

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        if incident.state == "closed":
            console.print(f"{incident.key} is closed: nothing was left open.")
        elif incident.state == "reporting":
            left = len(open_obligations(session, incident))
            console.print(
                f"{incident.key} stays open: {left} more to do (breach show {incident.key})."
            )


def acknowledged(
    key: Key,
    regime: Regime,
    at: Annotated[str | None, typer.Option(help="When (ISO 8601); default: now.")] = None,
    phase: Phase = None,
    to: To = None,
) -> None:
    """Record the regulator's acknowledgement of a submitted report."""
    from breachflow.flows.report.submission import record_acknowledgement

    when = parse_time(at, "--at") or utcnow()
    report = record_acknowledgement(key, regime, phase, at=when, actor=actor(), to=to)
    console.print(f"{key.upper()}: {report.label} acknowledged {fmt(when)}")


def delay_reason(
    key: Key, regime: Regime, reason: Reason, phase: Phase = None, to: To = None
) -> None:
    """Give the reasons a report is late (F11); its pack is rewritten and it can be filed."""
    from breachflow.flows.report.submission import give_delay_reason

    report = give_delay_reason(key, regime, phase, reason, actor(), to)
    console.print(
        f"{key.upper()}: {report.label} is now {report.state}; pack {report.files['pdf']}"
    )


def supplement(key: Key, regime: Regime, to: To = None) -> None:
    """File a further (supplementary) report with the facts as they stand now."""
    from breachflow.flows.report.submission import supplement as file_supplement

    report = file_supplement(key, regime, actor(), to)
    console.print(
        f"{key.upper()}: {report.label} is {report.state}; pack {report.files.get('pdf')}"
    )


report_app.command()(submitted)
report_app.command()(acknowledged)
report_app.command("delay-reason")(delay_reason)
report_app.command()(supplement)


def _deadline(report: RegulatorReport) -> str:
    if report.deadline is None:
        return escape(report.deadline_rule)
    if report.state in (ReportState.SUBMITTED, ReportState.ACKNOWLEDGED):
        met = report.submitted_at is not None and report.submitted_at <= report.deadline
        return f"{fmt(report.deadline)} ({'met' if met else 'late'})"
    overdue = utcnow() > report.deadline
    return f"{fmt(report.deadline)}" + (" [red](OVERDUE)[/]" if overdue else "")


def _state(report: RegulatorReport) -> str:
    if report.state == ReportState.HELD_LATE:
        return "[red]held: late, reasons for delay needed[/]"
    if report.state == ReportState.AWAITING_SUBMISSION and report.last_error:
        return f"awaiting submission (last attempt: {escape(report.last_error)})"
    return str(report.state).replace("_", " ")
