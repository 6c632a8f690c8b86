"""What the ``breach`` commands share: consoles, who is acting, times, and the run summary."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, overload

import typer

from breachflow.cli.terminal import SafeConsole

if TYPE_CHECKING:
    from breachflow.flows.runs import ResponseSummary

console = SafeConsole()
errors = SafeConsole(stderr=True)

Key = Annotated[str, typer.Argument(help="Incident key, e.g. INC-2026-0001.")]


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def actor() -> str:
    """Who is at the keyboard: ``BREACH_ACTOR`` or the login name."""
    return os.environ.get("BREACH_ACTOR") or f"cli:{getpass.getuser()}"


@overload
def parse_time(value: str, option: str) -> datetime: ...
@overload
def parse_time(value: str | None, option: str) -> datetime | None: ...
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


def window_verdict(due: datetime, finished: datetime | None, notified: int) -> str:
    """Where a deadline for telling people stands: met or missed only once notifying has
    finished; before that, the time left and how many have been told so far."""
    if finished is not None:
        return "[green]met[/]" if finished <= due else f"[red]MISSED[/], finished {fmt(finished)}"
    so_far = f"{notified} notified so far" if notified else "nobody notified yet"
    left = due - datetime.now(UTC)
    if left.total_seconds() < 0:
        return f"[red]OVERDUE[/] by {-left.days} days; {so_far}"
    return f"in {left.days} days {left.seconds // 3600} h; {so_far}"


def channel_label(channel: str) -> str:
    """``none`` is the ledger's channel for people no channel could be tried for."""
    return "no channel" if channel == "none" else channel


def states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


def print_summary(summary: ResponseSummary) -> None:
    """What a run did, as a person reads it."""
    if summary.nothing_to_do:
        console.print(
            f"{summary.incident_key} is already {summary.state}: nothing to do, nothing was sent."
        )
        return
    console.print(f"\n[bold]{summary.incident_key}[/] is {summary.state}.")
    if summary.open_before_closing:
        console.print("  [yellow]Open before it closes[/] (breach show lists them too):")
        for obligation in summary.open_before_closing:
            console.print(f"    - {obligation}")
    elif summary.waiting_for:
        console.print(f"  [yellow]Waiting for[/] {summary.waiting_for}.")
    console.print(f"  People affected:   {summary.affected}")
    console.print(f"  People notified:   {summary.notified} ({summary.sent_this_run} in this run)")
    console.print(f"  People unreachable: {summary.unreachable}")
    if summary.pending:
        console.print(f"  People in progress: {summary.pending}")
    for channel, states in summary.by_channel.items():
        console.print(f"    {channel_label(channel):<10} {states_text(states)}")
    if summary.notice_deadline:
        verdict = window_verdict(
            summary.notice_deadline, summary.notification_finished_at, summary.notified
        )
        console.print(f"  Notification window: {fmt(summary.notice_deadline)} ({verdict})")
    else:
        console.print("  Notification window: no fixed deadline under the rules and policy")
    if summary.unreachable_reasons:
        console.print("  Why people were unreachable:")
    for reason, n in list(summary.unreachable_reasons.items())[:10]:
        console.print(f"    {n:>5} × {reason}")
    if summary.outbox:
        console.print(f"  Outbox (sandbox):  {summary.outbox}")
    console.print(f"  Reports:           {summary.reports}")
    console.print(f"  Timeline:          breach timeline {summary.incident_key}")
