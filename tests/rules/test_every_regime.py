"""Every shipped regime, read from its own file: each head-count threshold on both sides and
each fixed clock to the exact instant, as the engine evaluates them.

The per-regime modules (``test_regimes_*.py``) say what the law is ("Florida: the
Department of Legal Affairs at 500 residents"); this one says that every number a rule file
holds does what it says, for the 90-odd files nobody will read one by one. A threshold the
engine cannot reach (a count of the wrong people, a scope that excludes them) or a clock that
ends anywhere but anchor + amount fails here, named by file and obligation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from breachflow.rules import IncidentFacts, OrganisationProfile, Regime, evaluate, load_rules
from breachflow.rules.conditions import OPS
from breachflow.rules.schema import Condition, Deadline, ObligationSpec
from breachflow.rules.vocab import Anchor, data_categories, sectors

REGIMES = [r for r in load_rules() if r.promise is None]
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
EVERY_ANCHOR = dict.fromkeys(get_args(Anchor), T)
#: An organisation every sector test passes for; establishment tests are left to the
#: per-regime modules (a profile without home jurisdictions counts as established).
EVERYONE = OrganisationProfile(sectors=set(sectors()))


def _specs(regime: Regime) -> list[tuple[str, ObligationSpec]]:
    """Every obligation of the regime and of its versions, with a readable id."""
    found = [(f"{regime.id}:{i}", s) for i, s in enumerate(regime.obligations)]
    for v, version in enumerate(regime.versions):
        found += [(f"{regime.id}:v{v}:{i}", s) for i, s in enumerate(version.obligations)]
    return found


def _thresholds() -> list[Any]:
    cases = []
    for regime in REGIMES:
        for name, spec in _specs(regime):
            when = spec.when
            if when is not None and when.count is not None and when.any_of is None:
                cases.append(pytest.param(regime, spec, id=name))
    return cases


def _clocks() -> list[Any]:
    cases = []
    for regime in REGIMES:
        for name, spec in _specs(regime):
            clocks = [spec.deadline, *spec.no_later_than]
            if all(_fixed(d) for d in clocks) and spec.per_place is None:
                cases.append(pytest.param(regime, spec, id=name))
    return cases


def _fixed(deadline: Deadline) -> bool:
    return (
        deadline.amount is not None
        and deadline.unit in ("hours", "calendar_days")
        and deadline.after is None
        and deadline.align is None
    )


def _place(regime: Regime, places: list[str]) -> str:
    """A place to put people in: the first member of the first place, groups expanded
    (a regime scoped by sector alone takes people from anywhere: ``XX``)."""
    candidates = places or regime.applicability.residence or regime.applicability.home
    first = candidates[0] if candidates else "XX"
    return regime.groups.get(first, [first])[0]


def _org(regime: Regime) -> OrganisationProfile:
    """Every sector flag, and established where a regime scoped by establishment needs it."""
    home = [] if regime.applicability.residence else regime.applicability.home[:1]
    homes = [regime.groups.get(h, [h])[0] for h in home]
    return EVERYONE.model_copy(update={"home_jurisdictions": homes})


def _when(regime: Regime, spec: ObligationSpec) -> datetime:
    """T, or the day after the obligation (or the regime) comes into force, if later."""
    starts = [d for d in (regime.applicability.in_force_from, spec.in_force_from) if d]
    ends = [d for d in (regime.applicability.in_force_until, spec.in_force_until) if d]
    at = T
    if starts and max(starts) >= T.date():
        at = datetime.combine(max(starts) + timedelta(days=1), T.timetz())
    if ends and min(ends) <= at.date():
        at = datetime.combine(min(ends) - timedelta(days=1), T.timetz())
    return at


def _alone(regime: Regime, spec: ObligationSpec) -> Regime:
    """The regime with only this obligation, so the answer is about it and nothing else."""
    return regime.model_copy(update={"obligations": [spec], "versions": []})


def _facts(
    regime: Regime, residents: dict[str, int], at: datetime = T, **more: object
) -> IncidentFacts:
    base: dict[str, Any] = {
        "anchors": dict.fromkeys(EVERY_ANCHOR, at),
        "risk": "high",
        "data_categories": set(data_categories()),
        "improper_purpose": True,
        "material": True,
        "residents": residents,
    }
    return IncidentFacts.model_validate(base | more)


def _people_for(regime: Regime, condition: Condition, n: int) -> dict[str, int]:
    """``n`` people counted by the condition's head-count test, and in the regime's scope."""
    test = condition.count
    assert test is not None
    where = _place(regime, test.of)
    if test.scope == "max_subdivision" and "-" not in where:
        scope = _place(regime, [])
        where = scope if "-" in scope and scope[:2] == where else f"{where}-XX"
    if "-" in where and where.endswith("-XX"):
        where = where[:3] + "CA"  # any subdivision of the country, e.g. a US state
    return {where: n}


@pytest.mark.parametrize(("regime", "spec"), _thresholds())
def test_each_head_count_threshold_on_both_sides(regime: Regime, spec: ObligationSpec) -> None:
    condition = spec.when
    assert condition is not None and condition.count is not None
    test = condition.count
    alone = _alone(regime, spec)
    for n in (test.value - 1, test.value, test.value + 1):
        if n <= 0:  # nobody affected is out of every scope, whatever the threshold says
            continue
        residents = _people_for(regime, condition, n)
        facts = _facts(regime, residents, _when(regime, spec))
        (obligation, *_) = evaluate(facts, [alone], _org(regime))
        expected = OPS[test.op](n, test.value)
        assert obligation.applies is expected, (n, test.op, test.value, obligation.reason)
        if not expected:
            assert obligation.deadline is None


@pytest.mark.parametrize(("regime", "spec"), _clocks())
def test_each_fixed_clock_ends_at_anchor_plus_its_amount(
    regime: Regime, spec: ObligationSpec
) -> None:
    # Enough people in scope for any threshold of the obligation itself.
    people = 10_000_000
    residents = {_place(regime, []): people}
    at = _when(regime, spec)
    facts = _facts(regime, residents, at, affected_total=people)
    (obligation, *_) = evaluate(facts, [_alone(regime, spec)], _org(regime))
    if not obligation.applies:
        # A test the fat facts cannot pass (e.g. "fewer than 500 people"); the threshold
        # test above covers the obligation on its other side.
        assert spec.when is not None, obligation.reason
        return
    possible = [min(at + _span(d) for d in [spec.deadline, *spec.no_later_than])]
    # A variant's deadline may govern instead (which one, the per-regime modules check).
    possible += [at + _span(v.deadline) for v in spec.variants if _fixed(v.deadline)]
    assert obligation.deadline in possible, obligation.deadline_rule
    assert obligation.starts_at == at


def _span(deadline: Deadline) -> timedelta:
    assert deadline.amount is not None
    if deadline.unit == "hours":
        return timedelta(hours=deadline.amount)
    return timedelta(days=deadline.amount)


def test_every_regime_is_cited_and_says_how_sure_it_is() -> None:
    assert len(REGIMES) >= 90
    for regime in REGIMES:
        for _, spec in _specs(regime):
            assert spec.citation.text.strip(), regime.id
        assert regime.confidence in ("✓", "~", "U")
        assert regime.facts_confidence() in ("✓", "~", "U")


def test_every_regime_answers_with_a_confidence_on_each_obligation() -> None:
    residents = {_place(r, []): 2_000 for r in REGIMES}
    facts = _facts(REGIMES[0], residents)
    answers = evaluate(facts, REGIMES, EVERYONE)
    assert {o.regime for o in answers} == {r.id for r in REGIMES}
    assert all(o.confidence in ("✓", "~", "U") for o in answers)


def test_every_rule_file_names_where_its_facts_come_from() -> None:
    """Issue 19's source discipline: a web address (official text, regulator, law firm) or
    the project's facts reference (``breach-law-facts.md``) in every file."""
    from breachflow.rules import RULES_DIR

    sources = ("http://", "https://", "breach-law-facts", "facts reference", "policy-promises")
    for regime in load_rules():
        text = (RULES_DIR / f"{regime.id}.yaml").read_text(encoding="utf-8")
        assert any(source in text for source in sources), regime.id
