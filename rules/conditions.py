"""Evaluate rule conditions against an incident, each verdict with a human-readable reason.

The reason is what a compliance reviewer reads ("612 residents of US-CA > 500"), so every
test states the number, threshold or flag it decided on.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from breachflow.rules.facts import IncidentFacts, OrganisationProfile
from breachflow.rules.schema import (
    UNVERIFIED_NOTE,
    Applicability,
    Condition,
    CountTest,
    Regime,
    SubstituteNotice,
)

OPS: dict[str, Callable[[int, int], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


@dataclass(frozen=True)
class Context:
    facts: IncidentFacts
    org: OrganisationProfile
    regime: Regime

    def expand(self, places: list[str]) -> list[str]:
        """Replace group names (EU, EEA) by their member countries."""
        codes: list[str] = []
        for place in places:
            codes += self.regime.groups.get(place, [place])
        return list(dict.fromkeys(codes))

    def residents(self, places: list[str]) -> int:
        return sum(self.facts.residents_of(code) for code in self.expand(places))


def _n(value: int) -> str:
    return f"{value:,}"


def _residents(value: int) -> str:
    return "resident" if value == 1 else "residents"


def count(test: CountTest, ctx: Context) -> Verdict:
    """A head-count threshold: "612 residents of US-CA > 500"."""
    places = test.of or ctx.regime.applicability.residence
    if test.scope == "total":
        value, label = ctx.facts.affected_total or 0, "affected"
    elif test.scope == "residents":
        value = ctx.residents(places)
        label = f"{_residents(value)} of {', '.join(places)}"
    else:
        countries = ctx.expand(places)
        subdivisions = {
            code: n
            for code, n in ctx.facts.residents.items()
            if code[:2] in countries and "-" in code
        }
        top = max(subdivisions, key=lambda c: subdivisions[c], default=None)
        value = subdivisions.get(top, 0) if top else 0
        label = (
            f"{_residents(value)} of {top} (largest subdivision)"
            if top
            else "residents of any subdivision"
        )
    grade = f" ({test.label})" if test.label else ""
    if OPS[test.op](value, test.value):
        return Verdict(True, f"{_n(value)} {label} {test.op} {_n(test.value)}{grade}")
    return Verdict(False, f"{_n(value)} {label}, not {test.op} {_n(test.value)}{grade}")


def _risk(level: str, facts: IncidentFacts) -> Verdict:
    if facts.risk is None:
        return Verdict(True, f"risk not assessed: treated as {level} or above until assessed")
    if RISK_ORDER[facts.risk] >= RISK_ORDER[level]:
        return Verdict(True, f"risk {facts.risk}")
    return Verdict(False, f"risk {facts.risk}, below {level}")


def _categories(wanted: list[str], facts: IncidentFacts) -> Verdict:
    found = [c for c in wanted if c in facts.data_categories]
    if found:
        return Verdict(True, f"data includes {', '.join(found)}")
    return Verdict(False, f"no data category among {', '.join(wanted)}")


def _sectors(wanted: list[str], org: OrganisationProfile) -> Verdict:
    missing = [s for s in wanted if s not in org.sectors]
    if missing:
        return Verdict(False, f"sector flag {', '.join(missing)} not set")
    return Verdict(True, f"sector flag {', '.join(wanted)}")


def _not_sectors(excluded: list[str], org: OrganisationProfile) -> Verdict:
    present = [s for s in excluded if s in org.sectors]
    if present:
        return Verdict(False, f"sector flag {', '.join(present)} set: another act applies")
    return Verdict(True, f"not {', '.join(excluded)}")


def _flag(value: bool, wanted: bool, yes: str, no: str) -> Verdict:
    return Verdict(value == wanted, yes if value else no)


def check(condition: Condition, ctx: Context) -> Verdict:
    """All given tests must hold; the reason lists them, or names the first that fails."""
    facts = ctx.facts
    verdicts: list[Verdict] = []
    if condition.sectors is not None:
        verdicts.append(_sectors(condition.sectors, ctx.org))
    if condition.not_sectors is not None:
        verdicts.append(_not_sectors(condition.not_sectors, ctx.org))
    if condition.risk_at_least is not None:
        verdicts.append(_risk(condition.risk_at_least, facts))
    if condition.data_categories is not None:
        verdicts.append(_categories(condition.data_categories, facts))
    if condition.improper_purpose is not None:
        verdicts.append(
            _flag(
                facts.improper_purpose,
                condition.improper_purpose,
                "improper purpose suspected",
                "no improper purpose suspected",
            )
        )
    if condition.material is not None:
        if facts.material is None:
            verdicts.append(Verdict(True, "materiality not yet determined: treated as material"))
        else:
            verdicts.append(
                _flag(facts.material, condition.material, "determined material", "not material")
            )
    if condition.count is not None:
        verdicts.append(count(condition.count, ctx))
    if condition.established_in is not None:
        verdicts.append(_established(condition.established_in, ctx, wanted=True))
    if condition.not_established_in is not None:
        verdicts.append(_established(condition.not_established_in, ctx, wanted=False))
    if condition.any_of is not None:
        verdicts.append(_any(condition.any_of, ctx))
    return _all(verdicts)


def _established(places: list[str], ctx: Context, *, wanted: bool) -> Verdict:
    """Whether the organisation's home jurisdictions include one of ``places``.

    A profile that names no home jurisdiction counts as established there, as rule files
    assumed before the test existed (GDPR's lead authority); the reason says it is assumed.
    The two tests are exact complements, so a pair of obligations never both or neither apply.
    """
    homes = ctx.expand(places)
    where = ", ".join(places)
    if not ctx.org.home_jurisdictions:
        return Verdict(wanted, f"establishment not stated in the profile: assumed in {where}")
    found = [h for h in ctx.org.home_jurisdictions if h in homes or h[:2] in homes]
    if found:
        return Verdict(wanted, f"established in {', '.join(found)}")
    return Verdict(not wanted, f"no establishment in {where}")


def _all(verdicts: list[Verdict]) -> Verdict:
    for verdict in verdicts:
        if not verdict.ok:
            return verdict
    return Verdict(True, "; ".join(v.reason for v in verdicts))


def _any(conditions: list[Condition], ctx: Context) -> Verdict:
    verdicts = [check(c, ctx) for c in conditions]
    met = [v.reason for v in verdicts if v.ok]
    if met:
        return Verdict(True, "; ".join(met))
    return Verdict(False, "none of: " + "; ".join(v.reason for v in verdicts))


def in_scope(scope: Applicability, ctx: Context) -> Verdict:
    """Territory, sector flags and data categories of a regime."""
    facts, org = ctx.facts, ctx.org
    verdicts: list[Verdict] = []
    if scope.always:
        total = facts.affected_total or 0
        verdicts.append(Verdict(total > 0, f"{_n(total)} affected" if total else "nobody affected"))
    if scope.residence or scope.home:
        verdicts.append(_territory(scope, ctx))
    if scope.sectors:
        verdicts.append(_sectors(scope.sectors, org))
    if scope.data_categories:
        verdicts.append(_categories(scope.data_categories, facts))
    verdict = _all(verdicts)
    if verdict.ok and scope.citation.confidence == "U":
        return Verdict(True, f"{verdict.reason} (scope [U] — {UNVERIFIED_NOTE})")
    return verdict


def _territory(scope: Applicability, ctx: Context) -> Verdict:
    found = [
        f"{_n(n)} {_residents(n)} of {place}"
        for place in scope.residence
        if (n := ctx.residents([place])) > 0
    ]
    homes = ctx.expand(scope.home)
    established = [h for h in ctx.org.home_jurisdictions if h in homes or h[:2] in homes]
    if established:
        found.append(f"established in {', '.join(established)}")
    if found:
        return Verdict(True, "; ".join(found))
    where = ", ".join(dict.fromkeys(scope.residence + scope.home))
    reason = f"no residents of {where}" if scope.residence else f"not established in {where}"
    if scope.residence and scope.home:
        reason += " and not established there"
    if ctx.facts.unknown_residence:
        reason += f" ({_n(ctx.facts.unknown_residence)} of unknown residence: review)"
    return Verdict(False, reason)


def substitute_text(notice: SubstituteNotice, ctx: Context) -> str:
    """How substitute notice works here, checking the head-count conditions we can check."""
    parts = []
    for cond in notice.when_any:
        if cond.kind == "judgement":
            parts.append(f"{cond.text} (operator to judge)")
            continue
        assert cond.op is not None and cond.value is not None
        if cond.kind == "cost_usd":
            parts.append(f"notice cost {cond.op} ${_n(cond.value)} (operator to judge)")
        elif cond.kind == "bad_contacts":
            parts.append(f"{cond.op} {_n(cond.value)} unreachable people (operator to judge)")
        else:
            test = CountTest(scope=cond.scope, op=cond.op, value=cond.value)
            verdict = count(test, ctx)
            parts.append(
                f"{cond.op} {_n(cond.value)} people: {'met' if verdict.ok else 'not met'}"
                f" ({verdict.reason})"
            )
    days = (
        f"; public notice for at least {notice.min_public_notice_days} days"
        if notice.min_public_notice_days
        else ""
    )
    return (
        f"{notice.method}{days}; allowed if any of: {'; '.join(parts)} — {notice.citation.render()}"
    )
