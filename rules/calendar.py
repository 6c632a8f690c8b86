"""Deadline arithmetic.

Conventions (they are part of the product's contract, and the README repeats them):

- **Hours and calendar days**: the deadline is the anchor instant plus that duration, as
  elapsed time (72 hours = 259,200 s; 30 calendar days = 30 × 24 h). It does not move to
  the end of the day, and a daylight-saving change in between does not shift it.
- **Calendar months** ("one month after the notification"): the same local clock time, in
  the regulator's time zone, on the same day of the month N months later; when that month
  has no such day (31 January + 1 month), its last day. Never later than the law's month.
- **Business days**: the deadline is 23:59:59 local time, in the regulator's time zone,
  on the Nth business day after the anchor's local date. Business days skip weekends and
  the jurisdiction's public holidays (``holidays`` package, country and optional
  subdivision). Weekend days that a country declares working days (China's make-up days)
  count as business days.
- **Year end** (``align: year_end``, HIPAA's annual log): the clock starts at 23:59:59 on
  31 December of the anchor's local year.
- **Open terms** ("without undue delay", "as soon as practicable", "immediately"): no
  fixed instant. The deadline is null and ``deadline_rule`` says so. For notices to
  individuals, the operator's policy deadline is the working limit.
"""

from __future__ import annotations

import calendar as months
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from breachflow.rules.schema import HolidayCalendar
from breachflow.rules.vocab import Unit

END_OF_DAY = time(23, 59, 59)


@cache
def _holidays(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    # Two years, so that a count that runs past 31 December (and China's make-up working
    # days, which are only known once a year is populated) is covered.
    return holidays.country_holidays(country, subdiv=subdivision, years=(year, year + 1))


def add_business_days(start: date, days: int, calendar: HolidayCalendar) -> date:
    """The ``days``-th business day after ``start`` (``start`` itself never counts)."""
    table = _holidays(calendar.country, calendar.subdivision, start.year)
    return table.get_nth_working_day(start, days)


def deadline_after(
    anchor: datetime,
    amount: int,
    unit: Unit,
    zone: ZoneInfo,
    calendar: HolidayCalendar | None = None,
) -> datetime:
    """The deadline ``amount`` ``unit`` after ``anchor``, as an aware UTC datetime."""
    if unit == "hours":
        return (anchor + timedelta(hours=amount)).astimezone(UTC)
    if unit == "calendar_days":
        return (anchor + timedelta(days=amount)).astimezone(UTC)
    if unit == "calendar_months":
        return add_months(anchor.astimezone(zone), amount).astimezone(UTC)
    if calendar is None:
        raise ValueError("business days need a holiday calendar")
    last = add_business_days(anchor.astimezone(zone).date(), amount, calendar)
    return datetime.combine(last, END_OF_DAY, tzinfo=zone).astimezone(UTC)


def add_months(local: datetime, amount: int) -> datetime:
    """``local`` moved ``amount`` months on, same day and wall-clock time, clipped to the
    month's last day (31 Jan + 1 month = 28 or 29 Feb)."""
    index = local.month - 1 + amount
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, months.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def year_end(anchor: datetime, zone: ZoneInfo) -> datetime:
    """23:59:59 on 31 December of the anchor's local year, as an aware UTC datetime."""
    local_year = anchor.astimezone(zone).year
    return datetime.combine(date(local_year, 12, 31), END_OF_DAY, tzinfo=zone).astimezone(UTC)


def describe(amount: int, unit: Unit) -> str:
    """``"72 hours"``, ``"30 calendar days"``, ``"1 business day"``."""
    noun = {
        "hours": "hour",
        "calendar_days": "calendar day",
        "calendar_months": "calendar month",
        "business_days": "business day",
    }
    return f"{amount} {noun[unit]}{'s' if amount != 1 else ''}"


def calendar_note(unit: Unit, zone: str, calendar: HolidayCalendar | None) -> str:
    """``" (America/Sao_Paulo, BR holidays)"`` for business days, else empty."""
    if unit != "business_days":
        return ""
    return f" ({zone}, {calendar.label() if calendar else 'no holidays'})"
