"""Instants that people and machines tell us: only ones that could have happened.

A time goes into the record (an incident's anchors, an alert's start, a filing) only if it
is a real instant: with a UTC offset, since 1970, and not in the future beyond a little
clock skew. Alertmanager's unset time (year 1) or a local time without an offset would
otherwise be stored and later overflow a deadline sum, or shift every deadline by hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from breachflow.models.base import utcnow

#: How far ahead of our clock another machine's clock may run.
CLOCK_SKEW = timedelta(minutes=5)
#: No incident Breachflow handles happened before this.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def impossible(moment: datetime, now: datetime | None = None) -> str | None:
    """Why ``moment`` cannot be a time something happened, or None when it can."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return "has no UTC offset (write e.g. 2026-11-20T09:30:00+08:00 or …Z)"
    if moment < EARLIEST:
        return "is before 1970: not a time an incident could have"
    if moment > (now or utcnow()) + CLOCK_SKEW:
        return "is in the future"
    return None


def _possible(moment: datetime) -> datetime:
    problem = impossible(moment)
    if problem:
        raise ValueError(f"{moment.isoformat()} {problem}")
    return moment


#: A pydantic field type for times given to the API: refused with a 422 when impossible.
Instant = Annotated[AwareDatetime, AfterValidator(_possible)]
