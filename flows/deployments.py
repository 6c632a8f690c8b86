"""Where a response run starts when its caller must not wait: a Prefect deployment or a thread.

Runs started by an approval, by an API call or by a declaring alert rule are not watched by
the person who caused them. With a Prefect server (``PREFECT_API_URL``), ``breach serve``
serves two deployments: the response, started here with ``run_deployment`` and an
idempotency key (a retried webhook or a double click starts one run, not two), and the
deadline watchdog on an interval schedule. The run then belongs to the server: it is
visible there, outlives the process that asked for it and runs wherever the deployment is
served. In the embedded default there is no server to hand it to, so the run goes to a
thread of the asking process and the watchdog to a loop beside the web server.

Either way our database, not Prefect, says what a run still has to do, so a run that starts
twice does the work once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from prefect.settings import get_current_settings

from breachflow.models.commands import get_incident
from breachflow.models.errors import InvalidInput, ProviderUnavailable
from breachflow.models.runtime import database, settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments.runner import RunnerDeployment

DEPLOYMENT = "breachflow"
RESPONSE = f"incident_response/{DEPLOYMENT}"
WATCHDOG = f"deadline_watchdog/{DEPLOYMENT}"
SHARD = f"notify-shard/{DEPLOYMENT}"


def use_deployments() -> bool:
    """``BREACH_PREFECT_DEPLOYMENTS`` if set, else whether a Prefect server is configured."""
    chosen = settings().prefect_deployments
    if chosen is not None:
        return chosen
    return bool(get_current_settings().api.url)


def start_response(incident_key: str, requested_by: str, idempotency_key: str) -> str:
    """Start ``incident_response`` for the incident without waiting; returns where it runs."""
    if use_deployments():
        return _run_deployment(incident_key, requested_by, idempotency_key)
    _in_thread(incident_key, requested_by)
    return "in-process"


def _run_deployment(incident_key: str, requested_by: str, idempotency_key: str) -> str:
    import httpx
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    with database().unit_of_work() as session:
        # Incident keys repeat across databases that may share one Prefect server (staging,
        # a restored copy): the key and the instant it was created name one incident.
        created = get_incident(session, incident_key).created_at.isoformat()
    try:
        # Prefect types it "FlowRun or a coroutine" (sync or async caller); here it is sync.
        run = cast(
            "FlowRun",
            run_deployment(
                RESPONSE,
                parameters={"incident_key": incident_key, "requested_by": requested_by},
                timeout=0,
                idempotency_key=f"{created}/{idempotency_key}",
                as_subflow=False,
            ),
        )
    except ObjectNotFound:
        raise InvalidInput(
            f"the Prefect server at {get_current_settings().api.url} has no deployment"
            f" {RESPONSE}: start `breach serve`, which serves it"
        ) from None
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        raise ProviderUnavailable(
            f"the Prefect server at {get_current_settings().api.url} did not take the run"
            f" ({type(exc).__name__}); nothing was started: retry, or `breach run {incident_key}`"
        ) from None
    return f"prefect flow run {run.id}"


def _in_thread(incident_key: str, requested_by: str) -> None:
    """A failed run is on the timeline (``run.failed``) with its reason: the thread has
    nobody to raise to."""
    from breachflow.flows.incident import incident_response

    def run() -> None:
        with contextlib.suppress(Exception):
            incident_response(incident_key, requested_by=requested_by)

    threading.Thread(target=run, name=f"run-{incident_key}", daemon=True).start()


def serve_deployments(watchdog_every: float) -> None:
    """Serve the response and the watchdog (on its schedule) from this process, until it
    stops. Each flow run executes in a child process, as Prefect's runner does."""
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    from breachflow.flows.incident import incident_response
    from breachflow.flows.watchdog import deadline_watchdog

    runner = Runner(name="breachflow", pause_on_shutdown=False)
    # Prefect types to_deployment "RunnerDeployment or a coroutine" (sync or async caller);
    # called here, outside any event loop, it returns the RunnerDeployment.
    response = incident_response.to_deployment(
        DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH
    )
    runner.add_deployment(cast("RunnerDeployment", response))
    if watchdog_every > 0:
        watchdog = deadline_watchdog.to_deployment(
            DEPLOYMENT,
            interval=timedelta(seconds=watchdog_every),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        runner.add_deployment(cast("RunnerDeployment", watchdog))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner.start())


def register_shards(pool: str) -> None:
    """Create the work pool (Prefect's process type) if it is missing and register the
    shard deployment on it; both are idempotent, so every worker may do it at start."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.types.entrypoint import EntrypointType
    from prefect.workers.process import ProcessWorker

    from breachflow.flows.notify.dispatch import notify_shard

    with get_client(sync_client=True) as prefect:
        try:
            prefect.read_work_pool(pool)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another worker was quicker
                prefect.create_work_pool(
                    WorkPoolCreate(
                        name=pool,
                        type=ProcessWorker.type,
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
    shard = notify_shard.to_deployment(DEPLOYMENT, entrypoint_type=EntrypointType.MODULE_PATH)
    cast("RunnerDeployment", shard).apply(work_pool_name=pool)


def run_worker(pool: str, name: str | None, limit: int | None) -> None:
    """Prefect's own process worker on ``pool``, in place of this process: each shard run
    it picks up executes in a child process with this process's environment."""
    import os
    import sys

    register_shards(pool)
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    command += ["--type", "process"]
    if name:
        command += ["--name", name]
    if limit:
        command += ["--limit", str(limit)]
    sys.stdout.flush()
    os.execv(sys.executable, command)  # noqa: S606  (our own interpreter, fixed arguments)


def watch_in_background(every: float, report: Callable[[str], None]) -> None:
    """The embedded watchdog: a check every ``every`` seconds beside the web server, for as
    long as it runs. A check that fails is reported and the next one runs on time."""
    from breachflow.flows.watchdog import deadline_watchdog

    def loop() -> None:
        while True:
            try:
                for alert in deadline_watchdog().alerts:
                    report(f"watchdog: {alert.incident_key} {alert.deadline} {alert.level}")
            except Exception as exc:
                report(f"watchdog check failed: {type(exc).__name__}: {exc}")
            time.sleep(every)

    threading.Thread(target=loop, name="deadline-watchdog", daemon=True).start()
