"""Places of residence: ISO 3166 codes checked, named and counted, from ``pycountry``.

A person lives in one place: a country (ISO 3166-1 alpha-2), perhaps a subdivision of it
(ISO 3166-2, ``US-CA``). The rules count residents at both levels ("500 residents of
US-CA", "residents of US"), so the assessment's ``residents`` holds a country's total and
each subdivision's share of it. A table a person reads must not add those up twice:
``residence_rows`` nests each subdivision under its country and says what is unknown, so
the rows add up to everyone.

A residence also says which time zone the person's clocks show (``timezone_of``), when it
names one, so that a notice gives times as they read them.
"""

from __future__ import annotations

import gettext
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any
from zoneinfo import ZoneInfo

import pycountry
import yaml

from breachflow.rules.vocab import TIMEZONES_FILE


@lru_cache(maxsize=4096)  # called per imported person: millions of rows, a few codes
def is_country(code: str) -> bool:
    """An assigned ISO 3166-1 alpha-2 code (``XX`` has the shape, not the assignment)."""
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None


@lru_cache(maxsize=4096)
def is_subdivision(code: str) -> bool:
    """An ISO 3166-2 subdivision code in force (``CN-GD``; ``CN-44`` was withdrawn)."""
    return _subdivision(code) is not None


def _subdivision(code: str) -> Any:
    return pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]


@cache
def _translation(domain: str, lang: str) -> gettext.NullTranslations:
    language = lang.replace("-", "_")
    return gettext.translation(
        domain, pycountry.LOCALES_DIR, languages=[language, language.split("_")[0]], fallback=True
    )


def place_name(code: str, lang: str = "en") -> str:
    """The place's name in ``lang`` where ISO's translators gave one, else in English; the
    code itself for a code ISO does not know (a record made before codes were checked)."""
    if "-" in code:
        subdivision = _subdivision(code)
        if subdivision is None:
            return code
        return _translation("iso3166-2", lang).gettext(subdivision.name)
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return _translation("iso3166-1", lang).gettext(country.name)


@dataclass(frozen=True)
class ResidenceRow:
    """One line of a residence table: a country (level 0), a subdivision of it or the
    people of it whose subdivision is not known (level 1), or the people whose residence
    is not known (``code`` None, level 0)."""

    code: str | None
    people: int
    level: int
    subdivision_unknown: bool = False


def residence_rows(residents: Mapping[str, int], unknown: int) -> list[ResidenceRow]:
    """``residents`` as the assessment counts them (a country's total, and each of its
    subdivisions) in rows that add up: countries by size, each followed by its
    subdivisions and the rest of its people; then the unknown."""
    countries = {code: n for code, n in residents.items() if "-" not in code}
    for code in residents:  # a subdivision whose country was not counted
        if "-" in code:
            countries.setdefault(code.split("-")[0], 0)
    rows: list[ResidenceRow] = []
    for country, total in sorted(countries.items(), key=lambda kv: (-kv[1], kv[0])):
        subdivisions = sorted(
            ((code, n) for code, n in residents.items() if code.startswith(f"{country}-")),
            key=lambda kv: (-kv[1], kv[0]),
        )
        total = max(total, sum(n for _, n in subdivisions))
        rows.append(ResidenceRow(country, total, 0))
        rows.extend(ResidenceRow(code, n, 1) for code, n in subdivisions)
        rest = total - sum(n for _, n in subdivisions)
        if subdivisions and rest:
            rows.append(ResidenceRow(country, rest, 1, subdivision_unknown=True))
    if unknown:
        rows.append(ResidenceRow(None, unknown, 0))
    return rows


@lru_cache(maxsize=4096)
def timezone_of(country: str | None, region: str | None) -> str | None:
    """The IANA zone a person's clocks show, from their residence, so that a notice can
    give a time as they read it. None when the residence does not say: no country, or a
    country whose zones keep different times (the US) and no subdivision listed in
    ``timezones.yaml``."""
    countries, subdivisions = _zone_table()
    if region and region in subdivisions:
        return subdivisions[region]
    if not country:
        return None
    if country in countries:
        return countries[country]
    return _one_time(country)


def locale_timezone(locale: str) -> str | None:
    """For a page read by anyone of a locale (``zh-CN``: China's zone), the zone its region
    names, if it names one; None for a locale without a region (``en``)."""
    regions = [part for part in locale.split("-")[1:] if len(part) == 2 and part.isalpha()]
    return timezone_of(regions[-1].upper(), None) if regions else None


@cache
def _zone_table() -> tuple[dict[str, str], dict[str, str]]:
    data = yaml.safe_load(TIMEZONES_FILE.read_text(encoding="utf-8"))
    return dict(data["countries"]), dict(data["subdivisions"])


@cache
def _one_time(country: str) -> str | None:
    """The country's first zone in tzdata's ``zone.tab`` when all of its zones keep the
    same time, summer and winter (Germany's Busingen keeps Berlin's); else None."""
    zones = _country_zones().get(country, [])
    if not zones:
        return None
    year = datetime.now(UTC).year
    probes = [datetime(year, 1, 15, tzinfo=UTC), datetime(year, 7, 15, tzinfo=UTC)]
    offsets = {tuple(p.astimezone(ZoneInfo(zone)).utcoffset() for p in probes) for zone in zones}
    return zones[0] if len(offsets) == 1 else None


@cache
def _country_zones() -> dict[str, list[str]]:
    zones: dict[str, list[str]] = {}
    table = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone, *_ = line.split("\t")
            zones.setdefault(country, []).append(zone)
    return zones
