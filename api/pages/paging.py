"""Pages of a long list (the board's incidents, a timeline's events): the ``?offset=`` a
link carries, checked so a bad one gets an error page, and the links either side."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import quote

from breachflow.models.errors import InvalidInput

MAX_OFFSET = 2**31


def offset_from(text: str, what: str) -> int:
    """``?offset=``: how many ``what`` to skip, a whole number from 0."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) > MAX_OFFSET:
        raise InvalidInput(
            f"offset must be a whole number of {what} to skip, from 0 to {MAX_OFFSET:,}"
        )
    return int(text)


def links(total: int, offset: int, size: int, filters: dict[str, str]) -> dict[str, str | None]:
    """Links to the previous and next page, keeping the filters."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in filters.items() if v)

    def link(start: int) -> str:
        return "?" + "&".join(p for p in (query, f"offset={start}" if start else "") if p)

    earlier = link(max(offset - size, 0)) if offset else None
    later = link(offset + size) if offset + size < total else None
    return {"earlier": earlier, "later": later}


MAX_SEARCH = 200


def search_from(text: str) -> str:
    """``?q=``: words to look for, at most :data:`MAX_SEARCH` characters."""
    text = " ".join(text.split())
    if len(text) > MAX_SEARCH:
        raise InvalidInput(f"a search is at most {MAX_SEARCH} characters")
    return text


def day_range(since: str, until: str) -> tuple[datetime | None, datetime | None]:
    """``?since=`` and ``?until=`` (``YYYY-MM-DD``, as a date field sends them, both days
    included) as UTC instants: from the start of ``since`` to the end of ``until``."""
    start, end = _day(since, "since"), _day(until, "until")
    if start and end and end < start:
        raise InvalidInput("until must not be before since")
    return (
        datetime.combine(start, time(), UTC) if start else None,
        datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
    )


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a day as YYYY-MM-DD") from None
