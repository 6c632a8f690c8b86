"""``breach``: declare an incident, import who is affected, run the response, review it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from breachflow import shipped
from breachflow.cli import assessing, export, reporting, review, runbook, triage
from breachflow.cli.common import Key, Risk, actor, console, errors, parse_time, print_summary
from breachflow.cli.exercise import exercise_app
from breachflow.cli.keys import keys_app
from breachflow.cli.letters import letters_app
from breachflow.cli.terminal import SafeTable, readable_help
from breachflow.cli.triage import alerts_app, public_app
from breachflow.models import commands, runtime
from breachflow.models.errors import BreachError
from breachflow.models.incident import Severity
from breachflow.models.notice import parse_notice_texts

app = typer.Typer(
    help="Breachflow: drive a personal-data breach from declaration to closure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings reflow to the terminal, not at their breaks
)
subjects_app = typer.Typer(help="The people affected by an incident.", no_args_is_help=True)
notice_app = typer.Typer(help="The notice texts every person receives.", no_args_is_help=True)
audit_app = typer.Typer(help="Check the tamper-evident timeline.", no_args_is_help=True)
app.add_typer(subjects_app, name="subjects")
app.add_typer(notice_app, name="notice")
app.add_typer(audit_app, name="audit")
app.add_typer(exercise_app, name="exercise")
app.add_typer(reporting.report_app, name="report")
app.add_typer(keys_app, name="keys")
app.add_typer(alerts_app, name="alerts")
app.add_typer(public_app, name="public")
app.add_typer(letters_app, name="letters")


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
    from breachflow.flows.assess.assessment import check_data_categories

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
    from breachflow.cli.importing import import_with_progress

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
            table = SafeTable("line", "reason", title=title, title_justify="left")
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


# In the order a responder uses them: declare, import, assess, run, review.
app.command()(assessing.assess)
app.command()(assessing.obligations)
app.command()(assessing.update)


@app.command()
def run(key: Key) -> None:
    """Run the response: assess, report, notify, announce, report, close; safe to rerun."""
    from breachflow.cli.progress import run_with_progress

    summary = run_with_progress(key, actor(), console)
    print_summary(summary)


@app.command()
def close(
    key: Key,
    reason: Annotated[
        str,
        typer.Option(help="Why it is closed with obligations still open: kept on the timeline."),
    ],
) -> None:
    """Close early: with reports unfiled, the announcement still up or no sign-off.

    An incident closes by itself (at `breach run`, the last filing or the watchdog) once
    nothing is open; `breach show` lists what is. This records who closed it, why, and
    what was still open, and schedules the purge of contact details.
    """
    from breachflow.flows.close.step import close_early

    still_open = close_early(key, actor(), reason)
    console.print(f"{key.upper()} is closed, by {actor()}, with the reason on the timeline.")
    for obligation in still_open:
        console.print(f"  still open when closed: {obligation}")


@app.command()
def dispatch(key: Key) -> None:
    """Join the sending of an incident's notices from another process or machine.

    `breach run` queues the notices and sends them; each `breach dispatch` started beside
    it claims batches from the same ledger, so the work is shared and no notice is sent
    twice. Returns when nothing is left to send. Also sends what a provider's late report
    reopened after the run finished notifying (a person moved to their next channel).
    """
    from breachflow.flows.notify.dispatch import notify_shard
    from breachflow.models.incident import IncidentState

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        if not incident.has_reached(IncidentState.NOTIFYING):
            raise BreachError(
                f"{key} is {incident.state}: `breach run {key}` queues the notices first; "
                "dispatchers help send them"
            )
    sent = notify_shard(key)
    shown = ", ".join(f"{n} by {channel}" for channel, n in sent.items()) or "nothing"
    console.print(f"{key}: this dispatcher handed {shown} to the providers.")


@app.command()
def worker(
    pool: Annotated[
        str | None, typer.Option(help="Work pool to poll (default: BREACH_WORK_POOL).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="This worker's name on the flow runs.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Shard runs at most at once in this worker.")
    ] = None,
) -> None:
    """Run notification shards for the Prefect server at PREFECT_API_URL.

    Prefect's process worker on the work pool: `breach run` (or a deployment run) submits
    the notify stage's shards there, and every worker started like this, on any machine
    with this machine's BREACH_* settings, takes some. Creates the pool and registers the
    shard deployment first. A worker that dies loses nothing: its leases expire and the
    other shards send its notices."""
    from prefect.settings import get_current_settings

    from breachflow.flows import deployments

    if not get_current_settings().api.url:
        raise BreachError(
            "a worker needs a Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api)"
        )
    chosen = pool or runtime.settings().work_pool
    console.print(f"Worker for work pool {chosen!r} at {get_current_settings().api.url}")
    deployments.run_worker(chosen, name, limit)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    watchdog_every: Annotated[
        float, typer.Option(help="Run the deadline watchdog every N seconds (0: never).")
    ] = 300,
    worker: Annotated[
        bool,
        typer.Option(
            help="With a Prefect server, also run a `breach worker` for notification shards."
        ),
    ] = True,
) -> None:
    """Serve the HTTP API, alert intake, compliance pages (/ui/) and the deadline watchdog.

    Also: provider status callbacks, the notice pages that SMS and push link to, the
    announcement site (/site/) and the report page (/report); API keys: breach keys create.
    For operations: /healthz, /readyz, /metrics (a `metrics` key), an access log on stderr
    (BREACH_LOG_FORMAT=json for JSON lines). With a Prefect server (PREFECT_API_URL) this
    process also serves the deployments incident_response/breachflow and
    deadline_watchdog/breachflow (on its schedule)."""
    import threading
    import time

    import uvicorn
    from prefect.settings import get_current_settings

    from breachflow.api.access_log import configure as configure_logs
    from breachflow.api.app import create_app
    from breachflow.flows import deployments

    configure_logs(runtime.settings().log_format)
    # Forwarded headers are read by the app, from BREACH_TRUSTED_PROXIES only (api/clients.py).
    # The access log is the app's own (api/access_log.py: route templates, no query strings);
    # log_config=None keeps uvicorn from replacing the handlers configure_logs installed.
    config = uvicorn.Config(
        create_app(),
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    console.print(f"Serving on http://{host}:{port} (public URL: {runtime.settings().public_url})")
    if not deployments.use_deployments():
        if watchdog_every > 0:
            deployments.watch_in_background(watchdog_every, errors.print)
        server.run()
        return
    http = threading.Thread(target=server.run, name="http", daemon=True)
    http.start()
    while not server.started and http.is_alive():  # e.g. the port is taken: uvicorn says so
        time.sleep(0.05)
    if not server.started:
        raise typer.Exit(1)
    console.print(
        f"Serving deployments {deployments.RESPONSE}"
        + (f" and {deployments.WATCHDOG} (every {watchdog_every:g} s)" if watchdog_every else "")
        + f" on the Prefect server at {get_current_settings().api.url}"
    )
    shards = _start_worker() if worker else None
    try:
        deployments.serve_deployments(watchdog_every)
    finally:
        if shards is not None:
            shards.terminate()
            shards.wait(timeout=30)


def _start_worker() -> subprocess.Popen[bytes]:
    """``breach worker`` beside the server: one machine needs nothing else started."""
    import socket

    name = f"serve-{socket.gethostname()}"
    console.print(f"Starting worker {name} for work pool {runtime.settings().work_pool!r}")
    return subprocess.Popen([sys.executable, "-m", "breachflow.cli", "worker", "--name", name])


app.command()(review.show)
app.command("list")(review.list_incidents)
app.command()(review.timeline)
app.command()(export.export)
app.command()(runbook.runbook)
app.command()(runbook.step)
app.command()(runbook.approve)
app.command()(triage.triage)
app.command()(triage.confirm)
app.command()(triage.dismiss)
app.command()(reporting.announce)
app.command("reports")(reporting.list_reports)
audit_app.command("verify")(review.audit_verify)
audit_app.command("keygen")(review.audit_keygen)
audit_app.command("checkpoint")(review.audit_checkpoint)


@app.command()
def watchdog(
    every: Annotated[
        float | None,
        typer.Option(help="Keep running, checking every N seconds (default: check once)."),
    ] = None,
) -> None:
    """Warn on-call about deadlines at 50/75/90% of their window and overdue, once each."""
    import time

    from breachflow.flows.watchdog import deadline_watchdog

    while True:
        run = deadline_watchdog()
        for alert in run.alerts:
            console.print(
                f"{alert.incident_key}: {alert.deadline} {alert.level}"
                f" (due {alert.due_at:%Y-%m-%d %H:%M} UTC)"
            )
        for problem in run.undelivered:
            errors.print(f"[red]warning not delivered:[/] {problem}")
        for key in run.reported:
            console.print(f"{key}: provider reports moved the ledger (notifications.reported)")
        if not run.alerts:
            console.print("No new deadline warnings.")
        if every is None:
            return
        time.sleep(every)


@app.command()
def keygen() -> None:
    """Print a new data key (base64) for BREACH_DATA_KEY; store it like a password."""
    from breachflow.models.crypto import generate_key

    sys.stdout.write(generate_key() + "\n")
    errors.print(
        "Set it as BREACH_DATA_KEY (or put it in a 0600 file named by BREACH_DATA_KEY_FILE) on "
        "every machine that shares the database. Losing it loses the contact details."
    )


@app.command()
def purge() -> None:
    """Delete contact details of closed incidents whose retention has run out (cron-safe)."""
    from breachflow.flows.close.step import purge_due

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
    from breachflow.cli.demo import run_demo

    run_demo(people, seed, actor(), console, policy)


@app.command()
def examples(
    folder: Annotated[Path, typer.Argument(help="Where to put them.")] = Path("examples"),
) -> None:
    """Copy the example files that ship with Breachflow into FOLDER (default ./examples):
    notice texts, operators' policy profiles and alert rules, to start your own from.
    Files already there are kept."""
    source = shipped("examples")
    for path in sorted(source.rglob("*.yaml")):
        target = folder / path.relative_to(source)
        if target.exists():
            console.print(f"kept     {target} (already there)", highlight=False)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        except OSError as exc:
            raise BreachError(f"cannot write {target}: {exc.strerror or exc}") from None
        console.print(f"written  {target}", highlight=False)


def main() -> None:
    """The ``breach`` command: the Typer app, its help made readable (cli/terminal.py)."""
    command = readable_help(typer.main.get_command(app))
    try:
        command()
    except BreachError as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
