"""When a public announcement may replace notice one by one: the substitute-notice
conditions checked against what we know after notification.

Head counts come from the assessment's facts; unreachable people from the delivery
ledger; the cost of individual notice from the operator's estimate, when one is set. A
judgement ("disproportionate effort", "difficult") is never met here: a named person
records it (``breach announce``).
"""

from __future__ import annotations

from dataclasses import dataclass

from breachflow.rules.conditions import OPS, Context, count
from breachflow.rules.schema import CountTest, SubstituteCondition, SubstituteNotice


@dataclass(frozen=True)
class ConditionCheck:
    regime: str
    met: bool
    text: str  # what was compared, in words: it goes on the timeline


def check(
    notice: SubstituteNotice, ctx: Context, *, unreachable: int, cost_usd: float | None
) -> list[ConditionCheck]:
    return [_check(cond, ctx, unreachable, cost_usd) for cond in notice.when_any]


def _check(
    cond: SubstituteCondition, ctx: Context, unreachable: int, cost_usd: float | None
) -> ConditionCheck:
    regime = ctx.regime.id
    if cond.kind == "judgement":
        return ConditionCheck(regime, False, f"{cond.text} (operator to judge)")
    assert cond.op is not None and cond.value is not None
    rule = f"{cond.op} {cond.value:,}"
    if cond.kind == "people":
        verdict = count(CountTest(scope=cond.scope, op=cond.op, value=cond.value), ctx)
        return ConditionCheck(regime, verdict.ok, f"people {rule}: {verdict.reason}")
    if cond.kind == "bad_contacts":
        met = OPS[cond.op](unreachable, cond.value)
        if not cond.public:
            return ConditionCheck(
                regime, False, f"unreachable {rule}: {unreachable:,} (its substitute is not public)"
            )
        return ConditionCheck(regime, met, f"unreachable people {rule}: {unreachable:,}")
    if cost_usd is None:
        return ConditionCheck(regime, False, f"notice cost {rule} USD (no estimate configured)")
    met = OPS[cond.op](int(cost_usd), cond.value)
    return ConditionCheck(regime, met, f"notice cost {rule} USD: estimated {cost_usd:,.0f}")
