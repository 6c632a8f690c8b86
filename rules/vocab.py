"""Shared vocabulary: the literal types of the rules model and the data in ``groups.yaml``.

Closed vocabularies (audiences, anchors, content codes, sector flags, data categories) are
validated everywhere they appear, because a misspelt flag would otherwise make a regime
silently not apply.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

import yaml

from breachflow import shipped

RULES_DIR = shipped("rules")
GROUPS_FILE = RULES_DIR / "groups.yaml"
#: Where people live -> the time zone their clocks show (``places.timezone_of``).
TIMEZONES_FILE = RULES_DIR / "timezones.yaml"

#: Clock starts. ``handling_ended`` (CAC summary report), ``contained`` (DESIGN.md),
#: ``classified_major`` (DORA: the incident classified as major) and ``corrective_measure``
#: (CRA: a corrective or mitigating measure available) are optional; an obligation anchored
#: on an unknown one has no deadline yet.
Anchor = Literal[
    "detected",
    "aware",
    "determined",
    "assessed",
    "discovered",
    "contained",
    "handling_ended",
    "classified_major",
    "corrective_measure",
]
Audience = Literal["individuals", "regulator", "media", "consumer_reporting_agencies", "controller"]
Phase = Literal["initial", "supplementary", "final"]
Unit = Literal["hours", "calendar_days", "calendar_months", "business_days"]
Risk = Literal["low", "medium", "high"]
Confidence = Literal["✓", "~", "U"]
#: From least to most certain: the confidence of a chain of facts is its weakest link.
CONFIDENCE_ORDER: tuple[Confidence, ...] = ("U", "~", "✓")
ContentCode = Literal[
    "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F11", "F12", "F13", "F14"
]
Channel = Literal["email", "letter", "phone", "sms", "push", "im"]

#: ISO 3166-1 alpha-2, optionally followed by an ISO 3166-2 subdivision: CN, US-CA, GB-SCT.
PLACE_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


@cache
def _vocabulary() -> dict[str, dict[str, object]]:
    with GROUPS_FILE.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return {key: dict(data[key]) for key in ("groups", "sectors", "data_categories")}


def groups() -> dict[str, list[str]]:
    """Residence groups (``EU``, ``EEA``) and their member countries."""
    result: dict[str, list[str]] = {}
    for name, members in _vocabulary()["groups"].items():
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            # e.g. a bare NO (Norway), which YAML reads as false
            raise ValueError(f"{GROUPS_FILE}: groups.{name}: members must be quoted ISO codes")
        result[name] = [check_place(m) for m in members]
    return result


def sectors() -> frozenset[str]:
    """Organisation-profile flags that rule files may require."""
    return frozenset(_vocabulary()["sectors"])


def data_categories() -> frozenset[str]:
    """Incident data categories that rule files may test."""
    return frozenset(_vocabulary()["data_categories"])


def check_place(code: str) -> str:
    """Return ``code`` if it is an ISO country or subdivision code, else raise ValueError."""
    if not PLACE_CODE.match(code):
        raise ValueError(f"{code!r} is not an ISO 3166 code such as 'CN' or 'US-CA'")
    return code


def check_known(values: list[str] | set[str], known: frozenset[str], what: str) -> None:
    """Raise ValueError naming every value outside the vocabulary."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")
