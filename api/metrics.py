"""``GET /metrics``: what an SRE scrapes with Prometheus, and the request latency behind it.

The ledger, the deadlines and the alert intake live in the database, written by whichever
process did the work (a dispatcher on a Prefect worker, the watchdog, another replica), so
their metrics are read from the database at scrape time, never counted in this process:
every replica answers the same. Counters are totals the database only ever grows (notices
sent, failed attempts, alerts received); Prometheus' ``rate()`` turns them into per-second
figures. Request latency is this process's own, as a histogram by route template (never
the raw path: no identifiers, no unbounded label values).

A scrape runs a handful of grouped queries; on 1,000,000 notifications it is one pass over
that table. Answers are kept for :data:`CACHE_SECONDS`, so several scrapers cost one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Row, func, select
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from breachflow.api.auth import Caller, allow
from breachflow.flows.watchdog import (
    DeadlineState,
    DeadlineStatus,
    deadline_statuses,
    watched_incidents,
)
from breachflow.models.alert import AlertGroup
from breachflow.models.apikey import Role
from breachflow.models.incident import Incident
from breachflow.models.notification import Notification, NotificationState
from breachflow.models.runtime import database

#: Seconds a scrape's answer is reused (Prometheus scrapes every 15-60 s).
CACHE_SECONDS = 10.0
Scraper = Annotated[Caller, allow(frozenset({Role.METRICS, Role.ADMIN}))]


class DatabaseCollector(Collector):
    """The ledger, the deadlines and the alert intake, read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._kept is None or time.monotonic() - self._kept[0] > CACHE_SECONDS:
                self._kept = (time.monotonic(), self._read())
            yield from self._kept[1]

    def _read(self) -> list[Metric]:
        with database().unit_of_work() as session:
            ledger = session.execute(
                select(
                    Notification.channel,
                    Notification.state,
                    func.count(),
                    func.count(Notification.sent_at),
                    func.coalesce(func.sum(Notification.attempts), 0),
                    func.max(Notification.sent_at),
                ).group_by(Notification.channel, Notification.state)
            ).all()
            received, groups = session.execute(
                select(func.coalesce(func.sum(AlertGroup.received), 0), func.count())
            ).one()
            watched = session.scalars(
                select(Incident).where(Incident.key.in_(watched_incidents(session)))
            ).all()
            deadlines = [s for incident in watched for s in deadline_statuses(session, incident)]
        return [
            *_ledger(ledger),
            *_deadlines(deadlines),
            CounterMetricFamily(
                "breachflow_alerts_received",
                "Alerts taken in by the intake (each occurrence once).",
                value=int(received),
            ),
            CounterMetricFamily(
                "breachflow_alerts_deduplicated",
                "Alerts folded into a group that was already open (same source and fingerprint).",
                value=int(received) - int(groups),
            ),
        ]


def _ledger(
    rows: Sequence[Row[tuple[str, NotificationState, int, int, int, datetime | None]]],
) -> list[Metric]:
    notices = GaugeMetricFamily(
        "breachflow_notices", "Notifications in the ledger, by channel and state.",
        labels=["channel", "state"],
    )  # fmt: skip
    sent = CounterMetricFamily(
        "breachflow_notices_sent", "Notices a provider accepted, by channel.", labels=["channel"]
    )
    failed = CounterMetricFamily(
        "breachflow_provider_errors",
        "Send attempts a provider refused or that failed, by channel.",
        labels=["channel"],
    )
    last = GaugeMetricFamily(
        "breachflow_last_sent_timestamp_seconds",
        "When a notice was last accepted by a provider, by channel (Unix time).",
        labels=["channel"],
    )
    by_channel: dict[str, list[float]] = {}
    for channel, state, count, sent_count, attempts, last_sent in rows:
        notices.add_metric([channel, str(state)], count)
        totals = by_channel.setdefault(channel, [0.0, 0.0, 0.0])
        totals[0] += sent_count
        totals[1] += attempts - sent_count  # every attempt but the one that succeeded
        totals[2] = max(totals[2], last_sent.timestamp() if last_sent else 0.0)
    for channel, (sent_count, errors, stamp) in sorted(by_channel.items()):
        sent.add_metric([channel], sent_count)
        failed.add_metric([channel], errors)
        if stamp:
            last.add_metric([channel], stamp)
    return [notices, sent, failed, last]


def _deadlines(statuses: list[DeadlineStatus]) -> list[Metric]:
    by_state = GaugeMetricFamily(
        "breachflow_deadlines",
        "Legal deadlines of watched incidents, by where they stand (met, met late, pending,"
        " at risk, overdue, no fixed deadline, not tracked).",
        labels=["status"],
    )
    counts = dict.fromkeys((str(s) for s in DeadlineState), 0)
    for status in statuses:
        counts[str(status.state)] += 1
    for state, count in counts.items():
        by_state.add_metric([state], count)
    soonest = GaugeMetricFamily(
        "breachflow_deadline_soonest_timestamp_seconds",
        "When the soonest open deadline falls due (Unix time); absent when none is open.",
    )
    due = [s.obligation.deadline for s in statuses if s.open and s.obligation.deadline]
    if due:
        soonest.add_metric([], min(due).timestamp())
    return [by_state, soonest]


def route_of(scope: Scope) -> str:
    """The matched route's template (``/api/v1/incidents/{key}``), or ``unmatched``: what
    the latency histogram and the access log (:mod:`api.access_log`) label a request by."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


def latency_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "breachflow_http_request_duration_seconds",
        "HTTP request duration by method, route template and status.",
        ["method", "route", "status"],
        registry=registry,
    )


def router_for(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, who: Scraper) -> Response:
        """Prometheus text format; a key of role ``metrics`` (or ``admin``) is required."""
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
