"""Turn an incident, the rules and the organisation profile into a list of obligations.

Every obligation of every regime is answered, applicable or not, so that the record shows
what was considered and why it was set aside. Checks run in this order and the first
failure is the reason: in force on the anchor's local date (regime, then obligation), the
regime's scope (territory, sector flags, data categories), the obligation's own condition
(thresholds, risk), then exemptions (encryption with the key safe, low risk).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from breachflow.rules.calendar import calendar_note, deadline_after, describe, year_end
from breachflow.rules.conditions import Context, Verdict, check, in_scope, substitute_text
from breachflow.rules.facts import Contact, IncidentFacts, Obligation, OrganisationProfile
from breachflow.rules.schema import (
    Authority,
    Deadline,
    Exemption,
    ObligationRef,
    ObligationSpec,
    PolicyProfile,
    Regime,
    RegimeVersion,
    SubstituteCondition,
    SubstituteNotice,
    weakest,
)

EXEMPTION_TEXT = {
    "encrypted_key_safe": "data encrypted and key not compromised",
    "low_risk": "risk assessed as low",
}


@dataclass(frozen=True)
class _Due:
    """A computed deadline with its rule text; ``open_term`` marks "no fixed instant"."""

    at: datetime | None
    rule: str
    open_term: bool = False
    start: datetime | None = None  # the instant the clock runs from


def evaluate(
    facts: IncidentFacts,
    regimes: Iterable[Regime],
    org: OrganisationProfile,
    policy: PolicyProfile | None = None,
) -> list[Obligation]:
    """Every obligation of every regime for this incident, in the order of ``regimes``.

    ``policy`` replaces the default promise of the ``policy`` regime (``rules/policy.yaml``).
    For notices to individuals under an open legal term, ``deadline_rule`` names the policy
    deadline as the working limit.
    """
    regimes = list(regimes)
    promised = [r for r in regimes if r.promise is not None]
    if policy is not None and not promised:
        raise ValueError("a policy profile was given but no policy regime is loaded")
    results = {r.id: _evaluate_regime(_with_promise(r, policy), facts, org) for r in promised}
    limit = notification_window([o for r in promised for o in results[r.id]])
    for regime in regimes:
        if regime.promise is None:
            results[regime.id] = _evaluate_regime(regime, facts, org, working_limit=limit)
    return [obligation for regime in regimes for obligation in results[regime.id]]


def notification_window(obligations: Iterable[Obligation]) -> datetime | None:
    """The earliest fixed deadline of an applicable notice to individuals, if any."""
    due = [
        o.deadline
        for o in obligations
        if o.applies and o.audience == "individuals" and o.deadline is not None
    ]
    return min(due, default=None)


def ruleset_fingerprint(regimes: Iterable[Regime]) -> str:
    """SHA-256 (hex) of the canonical JSON of the regimes, sorted by id.

    Snapshotted on the incident at assessment, so that the record shows which rules decided.
    """
    payload = [r.model_dump(mode="json") for r in sorted(regimes, key=lambda r: r.id)]
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _with_promise(regime: Regime, policy: PolicyProfile | None) -> Regime:
    """The policy regime with obligations built from the promise (the profile's, if given)."""
    promise = policy or regime.promise
    assert promise is not None
    if promise.window_days is not None:
        deadline = Deadline(anchor=promise.anchor, amount=promise.window_days, unit="calendar_days")
    else:
        deadline = Deadline(anchor=promise.anchor, term=promise.window_term)
    fallback = None
    if promise.announcement_fallback:
        fallback = SubstituteNotice(
            when_any=[
                SubstituteCondition(
                    kind="judgement", text="informing people one by one is difficult"
                )
            ],
            method="a reasonable and effective public announcement",
            citation=promise.citation,
        )
    channels = " → ".join(promise.channels)
    individuals = ObligationSpec(
        audience="individuals",
        recipient=f"each affected person ({promise.name} promise; channels {channels})",
        deadline=deadline,
        content_fields=promise.content_fields,
        substitute_notice=fallback,
        citation=promise.citation,
    )
    specs = [individuals]
    if promise.regulator_reporting:
        specs.append(
            ObligationSpec(
                audience="regulator",
                recipient="regulators, as their requirements say",
                deadline=Deadline(anchor=promise.anchor, term="proactively, as regulators require"),
                content_fields=[],
                citation=promise.citation,
            )
        )
    return regime.model_copy(update={"obligations": specs, "promise": promise})


def _evaluate_regime(
    regime: Regime,
    facts: IncidentFacts,
    org: OrganisationProfile,
    working_limit: datetime | None = None,
) -> list[Obligation]:
    zone_name = regime.timezone
    if regime.timezone_from_profile:
        zone_name = getattr(org, regime.timezone_from_profile)
    zone = ZoneInfo(zone_name)
    earliest = facts.earliest_anchor()
    specs, version = regime.obligations_on(earliest.astimezone(zone).date() if earliest else None)
    ctx = Context(facts=facts, org=org, regime=regime)
    scope = in_scope(regime.applicability, ctx)
    done: dict[int, list[Obligation]] = {}
    # Obligations timed from another obligation's deadline come after it.
    order = sorted(range(len(specs)), key=lambda i: specs[i].deadline.after is not None)
    for index in order:
        spec = specs[index]
        finished = [o for found in done.values() for o in found]
        one = _evaluate_one(regime, spec, ctx, zone, scope, finished, working_limit)
        done[index] = _per_place(regime, spec, ctx, one, finished)
    result = [o for i in range(len(specs)) for o in done[i]]
    if version is not None:
        result = [_versioned(o, version) for o in result]
    if regime.promise is not None and not regime.promise.regulator_reporting:
        result.append(_not_promised(regime, zone_name))
    return result


def _versioned(obligation: Obligation, version: RegimeVersion) -> Obligation:
    """Say which version of an amended law decided (the base text needs no mention)."""
    note = f"version in force from {version.in_force_from}"
    return obligation.model_copy(update={"reason": f"{obligation.reason}; {note}"})


def _per_place(
    regime: Regime,
    spec: ObligationSpec,
    ctx: Context,
    whole: Obligation,
    done: list[Obligation],
) -> list[Obligation]:
    """One obligation per place with residents, each to its own authority, if ``spec`` says.

    The obligation is first decided as a whole (scope, condition, exemptions); only an
    applicable one is split, so that a set-aside duty is recorded once with its reason.
    """
    if spec.per_place is None or not whole.applies:
        return [whole]
    places = [p for p in ctx.expand(spec.per_place) if ctx.facts.residents_of(p) > 0]
    if not places:
        where = ", ".join(spec.per_place)
        return [
            whole.model_copy(
                update={
                    "applies": False,
                    "deadline": None,
                    "starts_at": None,
                    "reason": f"no residents of {where}",
                }
            )
        ]
    split = []
    for place in places:
        authority = regime.authority(place=place)
        zone = ZoneInfo(authority.timezone if authority and authority.timezone else whole.timezone)
        _, chosen = _decide(regime, spec, ctx, zone, Verdict(True, ""))
        due = _clocks(regime, spec, chosen, ctx.facts, zone, done)
        residents = ctx.facts.residents_of(place)
        people = "resident" if residents == 1 else "residents"
        name = authority.name if authority else f"the supervisory authority of {place}"
        update = {
            "place": place,
            "recipient": name,
            "contact": _contact(authority) if authority else None,
            "timezone": zone.key,
            "deadline": due.at,
            "starts_at": due.start if due.at else None,
            "deadline_rule": due.rule,
            "reason": f"{whole.reason}; {residents:,} {people} of {place}; notify {name}",
        }
        if authority:
            update["confidence"] = weakest(
                regime.citation, regime.applicability.citation, spec.citation, authority.citation
            )
        split.append(whole.model_copy(update=update))
    return split


def _evaluate_one(
    regime: Regime,
    spec: ObligationSpec,
    ctx: Context,
    zone: ZoneInfo,
    scope: Verdict,
    done: list[Obligation],
    working_limit: datetime | None,
) -> Obligation:
    facts = ctx.facts
    verdict, chosen = _decide(regime, spec, ctx, zone, scope)
    due = _clocks(regime, spec, chosen, facts, zone, done)
    rule = due.rule
    if verdict.ok and due.open_term and spec.audience == "individuals" and working_limit:
        rule += f"; working limit: policy deadline {working_limit:%Y-%m-%dT%H:%M:%SZ}"
    reason = verdict.reason
    if verdict.ok and regime.applicability.voluntary:
        reason = f"voluntary: {reason}"
    recipient = regime.recipient_of(spec)
    if verdict.ok and spec.recipient and spec.per_place is None:
        reason += f"; notify {spec.recipient}"
    notice = spec.substitute_notice
    authority = regime.authority(name=recipient) if spec.audience == "regulator" else None
    return Obligation(
        regime=regime.id,
        audience=spec.audience,
        phase=spec.phase,
        title=spec.title,
        recipient=recipient,
        deadline=due.at if verdict.ok else None,
        starts_at=due.start if verdict.ok and due.at else None,
        deadline_rule=rule,
        applies=verdict.ok,
        reason=reason,
        content_fields=list(spec.content_fields),
        citation=_citation(regime, spec),
        timezone=zone.key,
        substitute_notice=substitute_text(notice, ctx) if notice else None,
        min_public_notice_days=notice.min_public_notice_days if notice else None,
        contact=_contact(authority) if authority else None,
        confidence=weakest(regime.citation, regime.applicability.citation, spec.citation),
    )


def _contact(authority: Authority) -> Contact:
    return Contact(
        name=authority.name, url=authority.url, email=authority.email, phone=authority.phone
    )


def _clocks(
    regime: Regime,
    spec: ObligationSpec,
    chosen: Deadline,
    facts: IncidentFacts,
    zone: ZoneInfo,
    done: list[Obligation],
) -> _Due:
    """The deadline of ``spec`` from its governing clock and its ``no_later_than`` bounds."""
    main = _deadline(regime, chosen, facts, zone, done)
    bounds = [_deadline(regime, d, facts, zone, done) for d in spec.no_later_than]
    if spec.late_anchor_restarts and main.start is not None:
        late = [b for b in bounds if b.at is not None and b.at < main.start]
        if late:
            passed = "; ".join(b.rule for b in late)
            rule = f"{main.rule} (its anchor came after the bound of {passed} had passed)"
            bounds = [b for b in bounds if b not in late]
            main = _Due(main.at, rule, main.open_term, main.start)
    return _earliest([main, *bounds])


def _earliest(clocks: list[_Due]) -> _Due:
    """Several clocks on one notice: the earliest fixed instant is the deadline.

    With one clock, that clock. Otherwise the rule names every clock and which one governs,
    so that the reader sees why a 4-hour clock still ends at the 24-hour bound.
    """
    if len(clocks) == 1:
        return clocks[0]
    fixed = [c for c in clocks if c.at is not None]
    rule = "; no later than ".join(c.rule for c in clocks)
    if not fixed:
        return _Due(None, rule, open_term=all(c.open_term for c in clocks))
    first = min(fixed, key=lambda c: c.at or datetime.max)
    which = f"the earliest applies: {first.rule}"
    return _Due(first.at, f"{rule} — {which}", start=first.start)


def _decide(
    regime: Regime, spec: ObligationSpec, ctx: Context, zone: ZoneInfo, scope: Verdict
) -> tuple[Verdict, Deadline]:
    """Whether ``spec`` applies (with reason) and which deadline (base or variant) governs."""
    facts = ctx.facts
    anchor = spec.deadline.anchor
    when = (facts.anchor(anchor) if anchor else None) or facts.earliest_anchor()
    on = when.astimezone(zone).date() if when else None
    chosen = spec.deadline
    for window in (regime.applicability, spec):
        verdict = _in_force(window.in_force_from, window.in_force_until, on)
        if not verdict.ok:
            return verdict, chosen
    if not scope.ok:
        return scope, chosen
    reasons = [scope.reason]
    if spec.when is not None:
        verdict = check(spec.when, ctx)
        if not verdict.ok:
            return verdict, chosen
        reasons.insert(0, verdict.reason)  # the obligation's own test decides: name it first
    for exemption in regime.exemptions:
        exempt = _exempt(exemption, spec, facts)
        if exempt is not None:
            return exempt, chosen
    for variant in spec.variants:
        verdict = check(variant.when, ctx)
        if verdict.ok:
            chosen = variant.deadline
            reasons.append(f"{verdict.reason}: {_short(chosen)}")
            break
    if on is None:
        reasons.append("no anchor time known: assumed in force")
    return Verdict(True, "; ".join(reasons)), chosen


def _in_force(start: date | None, end: date | None, on: date | None) -> Verdict:
    if on is None:
        return Verdict(True, "")
    if start is not None and on < start:
        return Verdict(False, f"not in force on {on} (in force from {start})")
    if end is not None and on > end:
        return Verdict(False, f"no longer in force on {on} (until {end})")
    return Verdict(True, "")


def _exempt(exemption: Exemption, spec: ObligationSpec, facts: IncidentFacts) -> Verdict | None:
    if exemption.audiences is not None and spec.audience not in exemption.audiences:
        return None
    triggered = (
        facts.encrypted_key_safe if exemption.kind == "encrypted_key_safe" else facts.risk == "low"
    )
    if not triggered:
        return None
    return Verdict(
        False, f"exempt: {EXEMPTION_TEXT[exemption.kind]} — {exemption.citation.render()}"
    )


def _short(deadline: Deadline) -> str:
    if deadline.term is not None:
        return deadline.term
    assert deadline.amount is not None and deadline.unit is not None
    return describe(deadline.amount, deadline.unit)


def _deadline(
    regime: Regime,
    deadline: Deadline,
    facts: IncidentFacts,
    zone: ZoneInfo,
    done: list[Obligation],
) -> _Due:
    note = f" — {deadline.note}" if deadline.note else ""
    if deadline.term is not None:
        return _Due(None, f"{deadline.term}, from {deadline.anchor}: no fixed deadline{note}", True)
    assert deadline.amount is not None and deadline.unit is not None
    span = describe(deadline.amount, deadline.unit)
    cal = calendar_note(deadline.unit, zone.key, regime.holidays)
    if deadline.after is not None:
        ref = deadline.after
        rule = f"{span} after the {ref.audience} notice, counted from its deadline{cal}{note}"
        start = _chained_start(ref, done)
        if start is None:
            return _Due(None, f"{rule}; no fixed {ref} deadline to count from")
    else:
        assert deadline.anchor is not None
        anchor = facts.anchor(deadline.anchor)
        if deadline.align == "year_end":
            rule = (
                f"{span} after the end of the calendar year of {deadline.anchor} ({zone.key}){note}"
            )
        else:
            rule = f"{span} after {deadline.anchor}{cal}{note}"
        if anchor is None:
            return _Due(None, f"{rule}; anchor '{deadline.anchor}' not known yet")
        start = year_end(anchor, zone) if deadline.align == "year_end" else anchor
    due = deadline_after(start, deadline.amount, deadline.unit, zone, regime.holidays)
    return _Due(due, rule, start=start)


def _chained_start(ref: ObligationRef, done: list[Obligation]) -> datetime | None:
    """The earliest fixed deadline of the applicable obligation ``ref`` names, if any.

    Counting from the referenced deadline gives the outer limit ("≤15 days after notifying
    individuals" is at latest 15 days after their deadline); once the actual notice time is
    known, the caller may count from that instead.
    """
    due = [
        o.deadline
        for o in done
        if (o.audience, o.phase) == (ref.audience, ref.phase) and o.applies and o.deadline
    ]
    return min(due, default=None)


def _citation(regime: Regime, spec: ObligationSpec) -> str:
    text = f"{spec.citation.render()}; source: {regime.source}"
    content = spec.content_confidence
    if content is not None and content != spec.citation.confidence:
        text += f"; content fields [{content}]"
        if content == "U":
            text += " — unverified default, operator may override"
    return text


def _not_promised(regime: Regime, zone_name: str) -> Obligation:
    promise = regime.promise
    assert promise is not None
    return Obligation(
        regime=regime.id,
        audience="regulator",
        phase="initial",
        deadline=None,
        deadline_rule="no regulator reporting promised",
        applies=False,
        reason=f"the {promise.name} policy does not promise reporting to regulators",
        content_fields=[],
        citation=f"{promise.citation.render()}; source: {regime.source}",
        timezone=zone_name,
    )
