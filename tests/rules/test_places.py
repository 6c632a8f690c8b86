"""Places of residence: one row per person in the tables a regulator reads."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import yaml

from breachflow.rendering.environment import environment
from breachflow.rules.places import (
    TIMEZONES_FILE,
    ResidenceRow,
    is_country,
    is_subdivision,
    place_name,
    residence_rows,
    timezone_of,
)

#: As the assessment counts them: a country's total, and each subdivision's share of it.
RESIDENTS = {"US": 4, "US-NY": 2, "US-CA": 1, "CN": 1, "CN-GD": 1, "DE": 2}


def test_subdivisions_nest_under_their_country_and_the_rows_add_up() -> None:
    """Three people in New York and California and one in the US without a state are four
    US residents, not 4 + 2 + 1."""
    rows = residence_rows(RESIDENTS, unknown=3)
    assert rows == [
        ResidenceRow("US", 4, 0),
        ResidenceRow("US-NY", 2, 1),
        ResidenceRow("US-CA", 1, 1),
        ResidenceRow("US", 1, 1, subdivision_unknown=True),
        ResidenceRow("DE", 2, 0),
        ResidenceRow("CN", 1, 0),
        ResidenceRow("CN-GD", 1, 1),
        ResidenceRow(None, 3, 0),
    ]
    assert sum(row.people for row in rows if row.level == 0) == 4 + 2 + 1 + 3


def test_places_are_named_in_the_readers_language() -> None:
    assert place_name("CN-GD", "zh-CN") == "广东省"
    assert place_name("US", "zh-CN") == "美国"
    assert place_name("JP", "ja") == "日本"
    assert place_name("US-CA", "en") == "California"
    assert place_name("CN-44", "en") == "CN-44"  # a code ISO does not know stays as it is


def test_the_residence_table_shows_each_person_once_with_a_total() -> None:
    rows = [
        {
            "code": row.code,
            "name": place_name(row.code, "zh-CN") if row.code else None,
            "people": row.people,
            "level": row.level,
            "subdivision_unknown": row.subdivision_unknown,
        }
        for row in residence_rows(RESIDENTS, unknown=3)
    ]
    template = environment().from_string(
        '{% import "reports/_macros.html.j2" as m %}{{ m.residence_table(rows, "zh-CN") }}'
    )
    html = template.render(rows=rows)
    assert '<tr class="nested"><td>广东省 (CN-GD)</td><td class="num">1</td></tr>' in html
    assert '<tr class="nested"><td>其中：行政区划不明</td><td class="num">1</td></tr>' in html
    assert '<tr><td>居住地不明</td><td class="num">3</td></tr>' in html
    assert '<tr class="total"><th>合计</th><td class="num">10</td></tr>' in html
    assert "CN-CN" not in html


def test_a_persons_time_zone_comes_from_their_residence_when_it_says_one() -> None:
    assert timezone_of("CN", "CN-GD") == "Asia/Shanghai"  # one civil time, by law
    assert timezone_of("DE", None) == "Europe/Berlin"  # Busingen keeps Berlin's time
    assert timezone_of("US", "US-CA") == "America/Los_Angeles"
    assert timezone_of("ES", "ES-CN") == "Atlantic/Canary"  # a subdivision wins
    assert timezone_of("ES", None) == "Europe/Madrid"
    # Zones that keep different times and nothing to choose between them: no zone, so the
    # notice says UTC rather than guessing a time the reader's clock does not show.
    assert timezone_of("US", None) is None
    assert timezone_of("BR", None) is None
    assert timezone_of(None, None) is None


def test_every_zone_in_the_table_is_a_real_zone_of_a_real_place() -> None:
    data = yaml.safe_load(TIMEZONES_FILE.read_text(encoding="utf-8"))
    for code, zone in {**data["countries"], **data["subdivisions"]}.items():
        ZoneInfo(zone)
        assert is_subdivision(code) if "-" in code else is_country(code), code
