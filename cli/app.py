"""``breach``: declare an incident, import who is affected, run the response, review it."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

# Prefect reads its settings when imported. Its console log would repeat, with a traceback,
# what this CLI already reports (and the timeline records); PREFECT_LOGGING_LEVEL=INFO
# brings it back. Errors that are not the user's still end in a traceback from main().
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")

from flows import runtime
from models import commands, ledger
from models.errors import BreachError
from models.incident import Incident, IncidentState, Severity
from models.notice import parse_notice_texts
from models.timeline import TimelineEvent, verify_chain

app = typer.Typer(
    help="Breachflow: drive a personal-data breach from declaration to closure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
subjects_app = typer.Typer(help="The people affected by an incident.", no_args_is_help=True)
notice_app = typer.Typer(help="The notice texts every person receives.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident timeline.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")
app.add_typer(notice_app, name="notice")
app.add_typer(audit_app, name="audit")

console = Console()
errors = Console(stderr=True)

Key = Annotated[str, typer.Argument(help="Incident key, e.g. INC-2026-0001.")]


def actor() -> str:
    """Who is at the keyboard: ``BREACH_ACTOR`` or the login name."""
    return os.environ.get("BREACH_ACTOR") or f"cli:{getpass.getuser()}"


def parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-11-20T09:30:00+08:00", param_hint=option
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def fmt(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


@app.command()
def declare(
    title: Annotated[str, typer.Option(help="Short name of the incident.")],
    severity: Annotated[Severity, typer.Option(help="How bad it is.")],
    detected_at: Annotated[
        str, typer.Option(help="When it was detected (ISO 8601; UTC if no offset).")
    ],
    aware_at: Annotated[str, typer.Option(help="When we became aware it is a breach.")],
    description: Annotated[str, typer.Option(help="What happened, for the record.")],
    data_category: Annotated[
        list[str], typer.Option(help="Data involved, e.g. email, phone; repeat the option.")
    ],
    contained_at: Annotated[str | None, typer.Option(help="When it was contained.")] = None,
    discovered_at: Annotated[
        str | None, typer.Option(help="When it was discovered (default: --detected-at).")
    ] = None,
    determined_at: Annotated[
        str | None, typer.Option(help="When it was determined to be notifiable / material.")
    ] = None,
    risk: Annotated[
        Risk | None, typer.Option(help="Risk to the people: low, medium, high.")
    ] = None,
    encrypted_key_safe: Annotated[
        bool, typer.Option(help="The data was encrypted and the key was not compromised.")
    ] = False,
    improper_purpose: Annotated[
        bool, typer.Option(help="An improper purpose (e.g. hacking) is suspected.")
    ] = False,
    notice: Annotated[
        Path | None, typer.Option(help="Notice texts file (YAML); see examples/notice.yaml.")
    ] = None,
) -> None:
    """Declare a new incident and print its key."""
    from flows.assessment import check_data_categories

    texts = _load_notice(notice) if notice else None
    with runtime.database().unit_of_work() as session:
        incident = commands.declare(
            session,
            title=title,
            description=description,
            severity=severity,
            detected_at=parse_time(detected_at, "--detected-at"),
            aware_at=parse_time(aware_at, "--aware-at"),
            contained_at=parse_time(contained_at, "--contained-at"),
            discovered_at=parse_time(discovered_at, "--discovered-at"),
            determined_at=parse_time(determined_at, "--determined-at"),
            risk=risk.value if risk else None,
            encrypted_key_safe=encrypted_key_safe,
            improper_purpose=improper_purpose,
            data_categories=check_data_categories(data_category),
            actor=actor(),
        )
        if texts:
            commands.set_notice(session, incident, texts, actor())
        key = incident.key
    console.print(key, highlight=False)


def _load_notice(path: Path) -> dict:
    if not path.is_file():
        raise BreachError(f"no such notice file: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BreachError(f"{path} is not valid YAML: {exc}") from None
    return parse_notice_texts(raw)


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@app.command()
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
    encrypted_key_safe: Annotated[bool | None, typer.Option()] = None,
    improper_purpose: Annotated[bool | None, typer.Option()] = None,
    material: Annotated[bool | None, typer.Option(help="SEC materiality determination.")] = None,
) -> None:
    """Change the facts the assessment depends on (recorded with old and new values)."""
    given = {name: value for name, value in locals().items() if name != "key" and value is not None}
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


@app.command()
def assess(
    key: Key,
    show_all: Annotated[bool, typer.Option("--all", help="Also list what does not apply.")] = False,
) -> None:
    """Assess the incident against every regime now and print its obligations."""
    from flows.assessment import assess as assess_incident

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        if incident.state == IncidentState.CLOSED:
            raise BreachError(f"{incident.key} is closed; its last assessment stands")
        assessment = assess_incident(session, incident, actor(), runtime.settings())
        window = incident.notice_deadline
    _print_obligations(key, assessment, window, show_all)


@app.command()
def obligations(
    key: Key,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Also list what does not apply.")] = False,
) -> None:
    """The obligations of the incident's latest assessment (rules as they were then)."""
    from models.assessment import latest_assessment

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


def _print_obligations(key: str, assessment, window, show_all: bool) -> None:  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    from models.base import utcnow

    now = utcnow()
    table = Table(
        "regime", "audience", "phase", "deadline (UTC)", "local", "left", "why", "content",
        title=f"{key} obligations (assessment {assessment.number}, {fmt(assessment.assessed_at)})",
        title_justify="left",
    )  # fmt: skip
    skipped = []
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
        table.add_row(
            o["regime"], o["audience"], o["phase"], deadline, local, left, o["reason"],
            " ".join(o["content_fields"]),
        )  # fmt: skip
    console.print(table)
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


def _left(delta) -> str:  # type: ignore[no-untyped-def]
    seconds = delta.total_seconds()
    if seconds < 0:
        return f"[red]overdue {int(-seconds // 86400)}d {int(-seconds % 86400 // 3600)}h[/]"
    return f"{int(seconds // 86400)}d {int(seconds % 86400 // 3600)}h"


@notice_app.command("set")
def notice_set(key: Key, file: Path) -> None:
    """Set the notice texts (per locale) that every affected person will receive."""
    texts = _load_notice(file)
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        version = commands.set_notice(session, incident, texts, actor())
        console.print(
            f"{incident.key}: notice version {version.version} ({', '.join(sorted(version.texts))})"
        )


@subjects_app.command("import")
def subjects_import(
    key: Key,
    file: Annotated[Path, typer.Argument(help="CSV (any delimiter), JSON Lines or Parquet.")],
    encoding: Annotated[
        str | None, typer.Option(help="CSV encoding; default: UTF-8 (BOM or not) or GB18030.")
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="ours=theirs, e.g. --map email=EmailAddress; repeatable."),
    ] = None,
) -> None:
    """Import affected people; repeats merge, bad rows are reported with line and reason."""
    from cli.importing import import_with_progress

    report = import_with_progress(key, file, encoding, _mapping(map_ or []), actor(), console)
    console.print(
        f"{key}: {report.rows:,} rows read ({report.source}): "
        f"[green]{report.new:,} new people[/], {report.merged:,} merged into people already "
        f"known, [red]{report.rejected_count:,} rejected[/], "
        f"{report.contact_problem_rows:,} with contact problems"
    )
    for title, lines, total in (
        ("Rejected", report.rejected, report.rejected_count),
        ("Warnings", report.warnings, report.warning_count),
    ):
        if lines:
            table = Table("line", "reason", title=title, title_justify="left")
            for line, reason in sorted(lines)[:20]:
                table.add_row(str(line), reason)
            if total > 20:
                table.add_row("…", f"{total - 20} more")
            console.print(table)
    if report.reject_file:
        console.print(f"All rejected lines: {report.reject_file}")
    if report.ignored_columns:
        console.print(f"Columns not used: {', '.join(report.ignored_columns)}")
    if report.rows and not (report.new or report.merged):
        raise typer.Exit(1)


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise typer.BadParameter(f"{pair!r}: write ours=theirs, e.g. email=EmailAddress")
        mapping[ours.strip().lower()] = theirs.strip()
    return mapping


@app.command()
def run(key: Key) -> None:
    """Run the response flow: assess, notify, report, close. Safe to run again."""
    from cli.progress import run_with_progress

    summary = run_with_progress(key, actor(), console)
    _print_summary(summary)


def _print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    if summary.nothing_to_do:
        console.print(
            f"{summary.incident_key} is already {summary.state}: nothing to do, nothing was sent."
        )
        return
    console.print(f"\n[bold]{summary.incident_key}[/] is {summary.state}.")
    console.print(f"  People affected:   {summary.affected}")
    console.print(f"  People notified:   {summary.notified} ({summary.sent_this_run} in this run)")
    console.print(f"  People unreachable: {summary.unreachable}")
    if summary.notice_deadline:
        met = summary.last_sent_at is None or summary.last_sent_at <= summary.notice_deadline
        verdict = "[green]met[/]" if met else "[red]MISSED[/]"
        console.print(f"  Notification window: {fmt(summary.notice_deadline)} ({verdict})")
    else:
        console.print("  Notification window: no fixed deadline under the rules and policy")
    for reason, n in summary.unreachable_reasons.items():
        console.print(f"    {n:>5} × {reason}")
    if summary.outbox:
        console.print(f"  Outbox (sandbox):  {summary.outbox}")
    console.print(f"  Reports:           {summary.reports}")
    console.print(f"  Timeline:          breach timeline {summary.incident_key}")


@app.command()
def show(key: Key) -> None:
    """State, anchor times, deadline and counts per notification state."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        counts = ledger.counts(session, incident)
        notice = commands.latest_notice(session, incident)
        people = commands.count_subjects(session, incident)
    table = Table(
        show_header=False, title=f"{incident.key} — {incident.title}", title_justify="left"
    )
    table.add_row("state", str(incident.state))
    table.add_row("severity", str(incident.severity))
    table.add_row("data categories", ", ".join(incident.data_categories) or "—")
    table.add_row("detected", fmt(incident.detected_at))
    table.add_row("aware", fmt(incident.aware_at))
    table.add_row("contained", fmt(incident.contained_at))
    table.add_row("risk", incident.risk or "not assessed")
    table.add_row("notification window", _deadline(incident.notice_deadline, incident))
    table.add_row("policy deadline", _deadline(incident.policy_deadline, incident))
    table.add_row("closed", fmt(incident.closed_at))
    if incident.purge_after:
        purge = f"done {fmt(incident.purged_at)}" if incident.purged_at else "due"
        table.add_row("contact details purge", f"{fmt(incident.purge_after)} ({purge})")
    table.add_row("declared by", incident.declared_by)
    table.add_row("affected people", str(people))
    table.add_row("notice version", str(notice.version) if notice else "none (breach notice set)")
    for state, n in sorted(counts.items()):
        table.add_row(f"notices {state}", str(n))
    table.add_row("timeline events", str(incident.timeline_length))
    console.print(table)


def _deadline(due: datetime | None, incident: Incident) -> str:
    """A deadline and where we stand against it: the dates that must not slip."""
    from models.base import utcnow

    if due is None:
        if incident.assessed_at is None:
            return "set when assessed"
        return "no fixed deadline (see `breach obligations`)"
    if incident.closed_at:
        verdict = "[green]met[/]" if incident.closed_at <= due else "[red]missed[/]"
        return f"{fmt(due)} ({verdict})"
    left = due - utcnow()
    if left.total_seconds() < 0:
        return f"{fmt(due)} ([red]overdue by {-left.days} days[/])"
    return f"{fmt(due)} (in {left.days} days {left.seconds // 3600} h)"


@app.command("list")
def list_incidents() -> None:
    """Every incident, newest first."""
    from sqlalchemy import select

    with runtime.database().unit_of_work() as session:
        incidents = session.scalars(select(Incident).order_by(Incident.id.desc())).all()
    table = Table("key", "state", "severity", "title", "aware", "notification window")
    for i in incidents:
        table.add_row(
            i.key, str(i.state), str(i.severity), i.title, fmt(i.aware_at), fmt(i.notice_deadline)
        )
    console.print(table)


@app.command()
def timeline(
    key: Key,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, hashes included.")] = False,
) -> None:
    """Every event of the incident, in order."""
    from sqlalchemy import select

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        events = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .order_by(TimelineEvent.seq)
        ).all()
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
    table = Table(
        "#", "happened", "recorded", "actor", "kind", "details",
        title=f"{incident.key} timeline", title_justify="left",
    )  # fmt: skip
    for e in events:
        happened = "" if e.occurred_at == e.recorded_at else fmt(e.occurred_at)
        table.add_row(str(e.seq), happened, fmt(e.recorded_at), e.actor, e.kind, _brief(e.payload))
    console.print(table)


def _brief(payload: dict) -> str:
    """``key=value, …`` on one line; the full payload is in ``--json``."""
    parts = []
    for name, value in payload.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{name}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= 200 else text[:199] + "…"


@audit_app.command("verify")
def audit_verify(key: Key) -> None:
    """Recompute the timeline's hash chain; exit 1 at the first broken event."""
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        check = verify_chain(session, incident)
    if check.ok:
        console.print(
            f"{incident.key}: timeline verified, {check.events} events, head {check.head}"
        )
        return
    errors.print(
        f"[red]{incident.key}: timeline BROKEN at event {check.broken_at}[/]: {check.reason}"
    )
    raise typer.Exit(1)


@app.command()
def keygen() -> None:
    """Print a new data key (base64) for BREACH_DATA_KEY; store it like a password."""
    from models.crypto import generate_key

    sys.stdout.write(generate_key() + "\n")
    errors.print(
        "Set it as BREACH_DATA_KEY (or put it in a 0600 file named by BREACH_DATA_KEY_FILE) on "
        "every machine that shares the database. Losing it loses the contact details."
    )


@app.command()
def purge() -> None:
    """Delete contact details of closed incidents whose retention has run out (cron-safe)."""
    from flows.close import purge_due

    done = purge_due(actor())
    if not done:
        console.print("Nothing is due for purging.")
    for key, people in done.items():
        console.print(f"{key}: contact details of {people} people deleted; the record is kept")


@app.command()
def demo(
    people: Annotated[
        int, typer.Option(min=1, max=100_000, help="How many affected people.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for the generated people.")] = 2026,
    policy: Annotated[
        Path | None, typer.Option(help="A policy profile, e.g. examples/policies/operator-a.yaml.")
    ] = None,
) -> None:
    """Generate a sample incident and run the whole response in the sandbox."""
    from cli.demo import run_demo

    run_demo(people, seed, actor(), console, policy)


def main() -> None:
    try:
        app()
    except BreachError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
