"""Fan the sending out: ``notify_shard`` runs on Prefect workers, or in this process.

With a Prefect server (``PREFECT_API_URL``), the notify stage submits ``notify_shards``
runs of the deployment ``notify-shard/breachflow`` to the work pool (default
``breachflow``) and waits for them; ``breach worker`` (Prefect's own process worker) on any
number of machines runs them. Without a server, the embedded default, the one shard runs
here, in the stage's own process.

The ledger, not the flow runs, says when sending is over. A worker killed mid-shard leaves
a run that Prefect shows as running forever; its leases expire and the other shards, which
wait for them, take its rows. Once nothing is left for any shard to do, a run still shown
as running after a grace period is marked crashed, with the reason on our timeline. If
every shard stops making progress while rows are due (all workers gone), another round of
shards is submitted, up to ``MAX_ROUNDS`` times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from uuid import UUID, uuid4

from prefect.runtime import flow_run as current_run
from prefect.settings import get_current_settings

from breachflow.flows.deployments import SHARD, use_deployments
from breachflow.flows.notify.dispatch import MAX_IDLE_WAIT, notify_shard, report_wait, usable_chain
from breachflow.models import ledger
from breachflow.models.commands import get_incident
from breachflow.models.errors import InvalidInput, ProviderUnavailable
from breachflow.models.runtime import database, settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, record

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

POLL_SECONDS = MAX_IDLE_WAIT  # a look at the flow runs and the ledger
WORKER_WAIT_SECONDS = 60.0  # how long a submission waits for a worker to poll the pool
MAX_ROUNDS = 5


def send_everything(incident_key: str, actor: str) -> None:
    """Run the shards until no row is left for them: on Prefect workers when a server is
    configured, else here."""
    if use_deployments():
        FanOut(incident_key, actor, settings()).run()
    else:
        notify_shard(incident_key)


@dataclass
class FanOut:
    incident_key: str
    actor: str
    config: Settings

    def run(self) -> None:
        if self._work_left() == (False, False):  # a rerun after everything was sent
            return
        with _prefect() as prefect:
            self._wait_for_a_worker(prefect)
            rounds = 1
            runs = self._submit(prefect, rounds)
            progress, quiet_since = self._progress(), time.monotonic()
            while True:
                time.sleep(POLL_SECONDS)
                flow_runs = {run: prefect.read_flow_run(run) for run in runs}
                live = [run for run, flow_run in flow_runs.items() if not _final(flow_run)]
                left, due_now = self._work_left()
                if not live:
                    self._raise_failures(flow_runs, left)
                    return
                now, seen = time.monotonic(), self._progress()
                if seen != progress:
                    progress, quiet_since = seen, now
                quiet = now - quiet_since
                if not left and quiet > self._grace():
                    # Nothing for any shard to do, and a live shard stops within its idle
                    # wait: what still shows as running lost its worker.
                    self._abandon(prefect, live)
                    return
                if due_now and quiet > self._stall():
                    # Rows are due and no shard has recorded a batch for longer than a
                    # lease: every shard's worker is gone. Send more, a bounded number.
                    if rounds == MAX_ROUNDS:
                        raise ProviderUnavailable(
                            f"{MAX_ROUNDS} rounds of shards stopped sending"
                            f" {self.incident_key}'s notices; nothing was lost: check the"
                            f" workers of work pool {self.config.work_pool!r}, then"
                            f" `breach run {self.incident_key}`"
                        )
                    self._abandon(prefect, live)
                    rounds += 1
                    runs = self._submit(prefect, rounds)
                    quiet_since = now

    def _submit(self, prefect: SyncPrefectClient, round_: int) -> list[UUID]:
        """``notify_shards`` runs of the shard deployment; a repeated stage run (the same
        parent flow run retried) gets the same runs back, not new ones."""
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        with database().unit_of_work() as session:
            incident = get_incident(session, self.incident_key)
            created = incident.created_at.isoformat()
        parent = current_run.get_id() or uuid4().hex  # a stage run outside a flow run
        runs: list[UUID] = []
        for shard in range(1, self.config.notify_shards + 1):
            try:
                run = cast(
                    "FlowRun",
                    run_deployment(
                        SHARD,
                        parameters={"incident_key": self.incident_key},
                        timeout=0,
                        idempotency_key=f"{created}/{parent}/{round_}/{shard}",
                        as_subflow=False,
                    ),
                )
            except ObjectNotFound:
                raise InvalidInput(
                    f"the Prefect server at {_api_url()} has no deployment {SHARD}: start a"
                    f" worker with `breach worker`, which registers it"
                ) from None
            runs.append(run.id)
        with database().unit_of_work() as session:
            record(
                session,
                get_incident(session, self.incident_key),
                EventKind.SHARDS_SUBMITTED,
                self.actor,
                {
                    "work_pool": self.config.work_pool,
                    "round": round_,
                    "flow_runs": [str(r) for r in runs],
                },
            )
        return runs

    def _wait_for_a_worker(self, prefect: SyncPrefectClient) -> None:
        """Refuse to queue runs that nobody will pick up: the stage would wait forever."""
        from prefect.client.schemas.objects import WorkPoolStatus
        from prefect.exceptions import ObjectNotFound

        pool = self.config.work_pool
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while True:
            try:
                if prefect.read_work_pool(pool).status == WorkPoolStatus.READY:
                    return
            except ObjectNotFound:
                pass
            if time.monotonic() > deadline:
                raise ProviderUnavailable(
                    f"no worker polls work pool {pool!r} on the Prefect server at {_api_url()};"
                    f" nothing was sent: start one with `breach worker`, then `breach run"
                    f" {self.incident_key}`"
                )
            time.sleep(POLL_SECONDS)

    def _work_left(self) -> tuple[bool, bool]:
        """(anything left for a shard, anything claimable right now), as a shard sees it."""
        with database().unit_of_work() as session:
            incident = get_incident(session, self.incident_key)
            chain, _ = usable_chain(session, incident, self.config)
            due = ledger.due_channels(session, incident, chain)
            waiting = ledger.next_due(session, incident, chain, report_wait(self.config))
        return bool(due) or waiting is not None, bool(due)

    def _progress(self) -> int:
        """The incident's timeline length: every batch a shard records adds an event, and
        reading it costs one row, where counting the ledger cost 0.6 s at a million."""
        with database().unit_of_work() as session:
            return get_incident(session, self.incident_key).timeline_length

    def _grace(self) -> float:
        """How long a shard with nothing left may still be shown running: its last batch's
        record and idle wait, with room to spare."""
        return 4 * MAX_IDLE_WAIT

    def _stall(self) -> float:
        """No batch recorded for longer than a lease while rows are due: no shard is alive."""
        return self.config.lease_seconds + 3 * MAX_IDLE_WAIT

    def _abandon(self, prefect: SyncPrefectClient, runs: list[UUID]) -> None:
        """Mark runs whose worker stopped as crashed, on Prefect and on our timeline."""
        from prefect.states import Crashed

        message = "its worker stopped; the other shards sent its notices"
        for run in runs:
            prefect.set_flow_run_state(run, Crashed(message=message), force=True)
        with database().unit_of_work() as session:
            record(
                session,
                get_incident(session, self.incident_key),
                EventKind.SHARDS_ABANDONED,
                self.actor,
                {"flow_runs": [str(r) for r in runs], "reason": message},
            )

    def _raise_failures(self, states: dict[UUID, FlowRun], left: bool) -> None:
        failed = [
            f"shard run {run}: {flow_run.state.message if flow_run.state else 'no state'}"
            for run, flow_run in states.items()
            if flow_run.state is None or not flow_run.state.is_completed()
        ]
        if failed:
            raise ProviderUnavailable(" | ".join(failed))
        if left:  # every shard finished, yet rows wait: a lease of a run started elsewhere
            raise ProviderUnavailable(
                f"the shards finished with notices of {self.incident_key} still pending;"
                f" nothing was lost: `breach run {self.incident_key}` sends them"
            )


def _final(flow_run: FlowRun) -> bool:
    return flow_run.state is not None and flow_run.state.is_final()


def _api_url() -> str:
    return str(get_current_settings().api.url)


@contextmanager
def _prefect() -> Iterator[SyncPrefectClient]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        yield client
