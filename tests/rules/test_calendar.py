"""Deadline arithmetic: the conventions of rules/calendar.py, each pinned by hand-counted dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from breachflow.rules.calendar import (
    add_business_days,
    calendar_note,
    deadline_after,
    describe,
    year_end,
)
from breachflow.rules.schema import HolidayCalendar

BR = HolidayCalendar(country="BR")
US = HolidayCalendar(country="US")
CN = HolidayCalendar(country="CN")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_hours_are_elapsed_time_across_a_dst_change() -> None:
    # New York leaves DST on 2026-11-01; 72 h stay 72 h.
    assert deadline_after(utc(2026, 10, 31, 12), 72, "hours", NEW_YORK) == utc(2026, 11, 3, 12)


def test_calendar_days_are_24_hour_days_from_the_anchor_instant() -> None:
    due = deadline_after(utc(2026, 10, 20, 16), 30, "calendar_days", NEW_YORK)
    assert due == utc(2026, 11, 19, 16)
    # The local clock time moves by the DST hour: 12:00 EDT became 11:00 EST.
    assert due.astimezone(NEW_YORK).hour == 11
    assert due.tzinfo == UTC


def test_business_days_skip_a_weekend() -> None:
    # Thursday 12 Nov 2026, 12:00 in São Paulo: Fri 13 (1), Mon 16 (2), Tue 17 (3).
    due = deadline_after(utc(2026, 11, 12, 15), 3, "business_days", SAO_PAULO, BR)
    assert due == datetime(2026, 11, 17, 23, 59, 59, tzinfo=SAO_PAULO)
    assert due == utc(2026, 11, 18, 2, 59, 59)


def test_business_days_skip_a_public_holiday() -> None:
    # Thursday 19 Nov; Friday 20 Nov is a national holiday in Brazil (Zumbi / Black
    # Awareness Day): Mon 23 (1), Tue 24 (2), Wed 25 (3).
    due = deadline_after(utc(2026, 11, 19, 15), 3, "business_days", SAO_PAULO, BR)
    assert due == utc(2026, 11, 26, 2, 59, 59)


@pytest.mark.parametrize(
    ("anchor", "last_day"),
    [
        # 23:00 on Thursday 12 Nov in São Paulo (UTC-3): counting starts after Thursday.
        (utc(2026, 11, 13, 2, 0), date(2026, 11, 17)),
        # 00:00 on Friday 13 Nov in São Paulo: counting starts after Friday.
        (utc(2026, 11, 13, 3, 0), date(2026, 11, 18)),
    ],
)
def test_business_days_count_from_the_local_date_in_the_regulators_zone(
    anchor: datetime, last_day: date
) -> None:
    due = deadline_after(anchor, 3, "business_days", SAO_PAULO, BR)
    assert due.astimezone(SAO_PAULO).date() == last_day
    assert due.astimezone(SAO_PAULO).time().isoformat() == "23:59:59"


def test_business_days_cross_the_year_end() -> None:
    # Wed 30 Dec 2026: Thu 31 Dec (1); 1 Jan holiday; 2–3 Jan weekend; Mon 4 (2), Tue 5 (3).
    assert add_business_days(date(2026, 12, 30), 3, BR) == date(2027, 1, 5)


def test_us_federal_business_days_skip_thanksgiving_and_christmas() -> None:
    # Fri 20 Nov: Mon 23, Tue 24, Wed 25, (Thu 26 Thanksgiving), Fri 27.
    assert add_business_days(date(2026, 11, 20), 4, US) == date(2026, 11, 27)
    # Tue 22 Dec: Wed 23, Thu 24, (Fri 25 Christmas), Mon 28, Tue 29.
    assert add_business_days(date(2026, 12, 22), 4, US) == date(2026, 12, 29)


def test_china_make_up_working_days_count_as_business_days() -> None:
    # Saturday 14 Feb 2026 is a make-up working day before the Spring Festival.
    assert add_business_days(date(2026, 2, 13), 1, CN) == date(2026, 2, 14)
    # After it: Sun 15 weekend, 16–20 and 23 Feb holidays, 21–22 weekend → Tue 24.
    assert add_business_days(date(2026, 2, 14), 1, CN) == date(2026, 2, 24)


def test_subdivision_holidays_are_used_when_given() -> None:
    # 31 March (César Chávez Day) is a California state holiday, not a federal one.
    california = HolidayCalendar(country="US", subdivision="CA")
    assert add_business_days(date(2026, 3, 30), 1, california) == date(2026, 4, 1)
    assert add_business_days(date(2026, 3, 30), 1, US) == date(2026, 3, 31)


def test_business_days_need_a_calendar() -> None:
    with pytest.raises(ValueError, match="holiday calendar"):
        deadline_after(utc(2026, 11, 12), 3, "business_days", SAO_PAULO)


def test_year_end_is_the_last_second_of_the_local_year() -> None:
    # 1 Jan 2027 03:00 UTC is still 31 Dec 2026 in New York.
    assert year_end(utc(2027, 1, 1, 3), NEW_YORK) == utc(2027, 1, 1, 4, 59, 59)
    assert year_end(utc(2026, 6, 1), NEW_YORK) == utc(2027, 1, 1, 4, 59, 59)


def test_descriptions() -> None:
    assert describe(1, "hours") == "1 hour"
    assert describe(72, "hours") == "72 hours"
    assert describe(30, "calendar_days") == "30 calendar days"
    assert describe(3, "business_days") == "3 business days"
    assert calendar_note("business_days", "America/Sao_Paulo", BR) == (
        " (America/Sao_Paulo, BR holidays)"
    )
    assert calendar_note("hours", "UTC", None) == ""
    assert HolidayCalendar(country="US", subdivision="NY").label() == "US-NY holidays"
