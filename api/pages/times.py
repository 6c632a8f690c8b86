"""Times and deadlines as every page shows them: the viewer's time with UTC alongside (or
UTC alone), the machine-readable instant, a countdown read at a glance, and a colour per
deadline state."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

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


#: The zone the viewer asked to read times in (``/ui/timezone``, a cookie), for this request.
VIEWER_ZONE: ContextVar[str | None] = ContextVar("viewer_zone", default=None)


def viewer_zone(name: str | None) -> str | None:
    """``name`` if it is an IANA zone other than UTC, else None (times stay UTC)."""
    if not name or name == "UTC" or len(name) > 64 or name not in _zones():
        return None
    return name


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def when(
    moment: datetime | None, zone: str | None = None, *, seconds: bool = False
) -> dict[str, str] | None:
    """A moment as a page shows it: UTC text, the viewer's time when they chose a zone,
    the regulator's (``zone``) when it is given, and the machine-readable instant."""
    if moment is None:
        return None
    text = f"{moment:%Y-%m-%d %H:%M:%S}" if seconds else f"{moment:%Y-%m-%d %H:%M}"
    shown = {"iso": moment.isoformat(), "text": f"{text} UTC"}
    mine = VIEWER_ZONE.get()
    if mine:
        local = moment.astimezone(ZoneInfo(mine))
        clock = f"{local:%Y-%m-%d %H:%M:%S}" if seconds else f"{local:%Y-%m-%d %H:%M}"
        shown["viewer"] = f"{clock} {local:%Z}".strip()
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
