"""Times and deadlines as every page shows them: UTC text with the machine-readable
instant, a countdown read at a glance, and a colour per deadline state."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from breachflow.flows.watchdog import DeadlineState

#: The state of a deadline → the colour class the pages give it.
TONE = {
    DeadlineState.MET: "met",
    DeadlineState.MET_LATE: "late",
    DeadlineState.ON_TRACK: "pending",
    DeadlineState.AT_RISK: "risk",
    DeadlineState.OVERDUE: "overdue",
    DeadlineState.OPEN: "open",
    DeadlineState.UNTRACKED: "muted",
}


def when(
    moment: datetime | None, zone: str | None = None, *, seconds: bool = False
) -> dict[str, str] | None:
    """A moment as a page shows it: UTC text, and the machine-readable instant."""
    if moment is None:
        return None
    text = f"{moment:%Y-%m-%d %H:%M:%S}" if seconds else f"{moment:%Y-%m-%d %H:%M}"
    shown = {"iso": moment.isoformat(), "text": f"{text} UTC"}
    if zone and zone != "UTC":
        try:
            local = moment.astimezone(ZoneInfo(zone))
            shown["local"] = f"{local:%Y-%m-%d %H:%M} {zone}"
        except (KeyError, ValueError):
            pass
    return shown


def countdown(due: datetime, now: datetime) -> str:
    """``in 2 d 4 h`` or ``overdue by 3 h 10 min``: read at a glance, no script needed."""
    left = due - now
    return f"in {_span(left)}" if left.total_seconds() >= 0 else f"overdue by {_span(left)}"


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta.total_seconds()) // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"
