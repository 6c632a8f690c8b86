"""The schema every rule file is validated against at load.

One :class:`Regime` per YAML file. Every fact carries a :class:`Citation` with the
confidence mark of ``breach-law-facts.md`` (✓ checked, ~ secondary source, U unverified);
a U fact is shipped as a default the operator can override (see ``load_rules(overrides=)``)
and is labelled as such wherever it is shown.

Models forbid unknown keys so that a typo in a rule file is an error, not an ignored line.
"""

from __future__ import annotations

from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from breachflow.rules.vocab import (
    CONFIDENCE_ORDER,
    PLACE_CODE,
    Anchor,
    Audience,
    Channel,
    Confidence,
    ContentCode,
    Phase,
    Unit,
    check_known,
    data_categories,
    sectors,
)

UNVERIFIED_NOTE = "unverified default, operator may override"


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt key in a rule file must not be ignored."""

    model_config = ConfigDict(extra="forbid")


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone, else raise ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


class Citation(StrictModel):
    """Where a fact comes from and how sure we are of it."""

    text: str = Field(min_length=3)
    confidence: Confidence

    def render(self) -> str:
        """``"GDPR Art 33(1) [✓]"``; U facts say that they are overridable defaults."""
        suffix = f" — {UNVERIFIED_NOTE}" if self.confidence == "U" else ""
        return f"{self.text} [{self.confidence}]{suffix}"


def weakest(*citations: Citation | None) -> Confidence:
    """The confidence of a conclusion drawn from several facts: that of the least sure."""
    marks = [c.confidence for c in citations if c is not None]
    return min(marks, key=CONFIDENCE_ORDER.index, default="✓")


class CountTest(StrictModel):
    """A head-count threshold.

    ``scope``: ``total`` (all affected people), ``residents`` (people resident in ``of``,
    default: the regime's residence list) or ``max_subdivision`` (the largest count among
    the subdivisions of the countries in ``of``, e.g. any single US state).
    """

    scope: Literal["total", "residents", "max_subdivision"]
    of: list[str] = []
    op: Literal[">", ">=", "<", "<="]
    value: int = Field(ge=0)
    label: str | None = None


class Condition(StrictModel):
    """A test on the incident; every key given must hold (AND), ``any_of`` is an OR."""

    risk_at_least: Literal["medium", "high"] | None = None
    data_categories: list[str] | None = None
    improper_purpose: bool | None = None
    material: bool | None = None
    sectors: list[str] | None = None
    #: The organisation has none of these flags (NIS2 Art 4: a DORA financial entity
    #: reports under DORA instead).
    not_sectors: list[str] | None = None
    count: CountTest | None = None
    #: The organisation is (or is not) established in one of these places (ISO codes or
    #: groups), from its profile's home jurisdictions: GDPR's one-stop shop needs an EU
    #: establishment.
    established_in: list[str] | None = None
    not_established_in: list[str] | None = None
    any_of: list[Condition] | None = None

    @field_validator("data_categories")
    @classmethod
    def _known_categories(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_known(value, data_categories(), "data categories")
        return value

    @field_validator("sectors", "not_sectors")
    @classmethod
    def _known_sectors(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            check_known(value, sectors(), "sector flags")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_dump(exclude_none=True):
            raise ValueError("empty condition: give at least one test")
        return self


class ObligationRef(StrictModel):
    """Another obligation of the same regime whose deadline starts this one's clock."""

    audience: Audience
    phase: Phase = "initial"

    def __str__(self) -> str:
        return f"{self.audience}/{self.phase}"


class Deadline(StrictModel):
    """When an obligation falls due.

    Either a fixed duration (``amount`` + ``unit``) from ``anchor`` (or from the deadline of
    the obligation named in ``after``), or an open legal ``term`` such as "without undue
    delay" that has no fixed instant. ``align: year_end`` moves the anchor to 23:59:59 on
    31 December of its local year (HIPAA's annual log).
    """

    anchor: Anchor | None = None
    after: ObligationRef | None = None
    amount: int | None = Field(default=None, gt=0)
    unit: Unit | None = None
    align: Literal["year_end"] | None = None
    term: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Deadline:
        fixed = self.amount is not None or self.unit is not None
        if fixed and (self.amount is None or self.unit is None):
            raise ValueError("a fixed deadline needs both amount and unit")
        if fixed == (self.term is not None):
            raise ValueError("give either amount + unit or an open term, not both or neither")
        if (self.anchor is None) == (self.after is None):
            raise ValueError("give exactly one of anchor or after")
        if self.after is not None and not fixed:
            raise ValueError("after needs a fixed amount + unit")
        if self.align is not None and not fixed:
            raise ValueError("align needs a fixed amount + unit")
        return self


class Authority(StrictModel):
    """A regulator's contact data, so that a report knows where it goes.

    ``place`` ties the authority to a country or subdivision for obligations with
    ``per_place`` (one report per member state with residents); ``timezone`` is its clock.
    """

    name: str = Field(min_length=2)
    place: str | None = Field(default=None, pattern=PLACE_CODE.pattern)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = None
    timezone: str | None = None
    citation: Citation

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return check_timezone(value) if value is not None else None


class DeadlineVariant(StrictModel):
    """A different deadline when ``when`` holds; the first matching variant wins."""

    when: Condition
    deadline: Deadline


class SubstituteCondition(StrictModel):
    """One condition under which substitute / public notice is allowed.

    ``people`` thresholds are checked against the incident; the others (cost, bad contacts,
    effort, practicability) are for the operator to judge and are listed as such.
    """

    kind: Literal["people", "cost_usd", "bad_contacts", "judgement"]
    op: Literal[">", ">=", "<", "<="] | None = None
    value: int | None = Field(default=None, ge=0)
    scope: Literal["total", "residents"] = "residents"
    text: str | None = None
    #: False when the substitute this condition allows is not a public one (HIPAA: fewer
    #: than 10 unreachable people get alternative written or telephone notice instead).
    public: bool = True

    @model_validator(mode="after")
    def _shape(self) -> SubstituteCondition:
        numeric = self.kind != "judgement"
        if numeric and (self.op is None or self.value is None):
            raise ValueError(f"kind {self.kind} needs op and value")
        if not numeric and not self.text:
            raise ValueError("kind judgement needs text")
        return self


class SubstituteNotice(StrictModel):
    """Substitute or public notice: when it is allowed, how, and for how long."""

    when_any: list[SubstituteCondition] = Field(min_length=1)
    method: str
    min_public_notice_days: int | None = Field(default=None, gt=0)
    citation: Citation


class Exemption(StrictModel):
    """A ground on which an obligation is waived for this incident."""

    kind: Literal["encrypted_key_safe", "low_risk"]
    audiences: list[Audience] | None = None
    citation: Citation


class HolidayCalendar(StrictModel):
    """Public holidays for business-day deadlines (``holidays`` package)."""

    country: str
    subdivision: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> HolidayCalendar:
        try:
            holidays.country_holidays(self.country, subdiv=self.subdivision, years=2026)
        except NotImplementedError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def label(self) -> str:
        return "-".join(p for p in (self.country, self.subdivision) if p) + " holidays"


class Applicability(StrictModel):
    """Whether a regime reaches this incident and this organisation at all.

    In scope when people resident in ``residence`` are affected, or the organisation is
    established in ``home`` (either suffices; neither given = no territorial test), and the
    organisation has every flag in ``sectors``, and the data includes one of
    ``data_categories`` (empty = any data). ``always`` is for the operator's own policy.
    """

    in_force_from: date | None = None
    in_force_until: date | None = None
    always: bool = False
    residence: list[str] = []
    home: list[str] = []
    sectors: list[str] = []
    data_categories: list[str] = []
    voluntary: bool = False
    citation: Citation

    @field_validator("sectors")
    @classmethod
    def _known_sectors(cls, value: list[str]) -> list[str]:
        check_known(value, sectors(), "sector flags")
        return value

    @field_validator("data_categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        check_known(value, data_categories(), "data categories")
        return value

    @model_validator(mode="after")
    def _something(self) -> Applicability:
        if not (self.always or self.residence or self.home or self.sectors):
            raise ValueError("give residence, home, sectors or always: true")
        return self


class ObligationSpec(StrictModel):
    """One notice duty: to whom, in which phase, by when, saying what."""

    audience: Audience
    phase: Phase = "initial"
    #: The law's own name for this notice ("early warning", "intermediate report").
    title: str | None = None
    recipient: str | None = None
    when: Condition | None = None
    deadline: Deadline
    #: Further clocks on the same notice; the earliest fixed instant of all is the deadline
    #: (DORA: 4 hours after classification and no later than 24 hours after awareness).
    no_later_than: list[Deadline] = []
    #: When the main clock's anchor becomes known only after a ``no_later_than`` clock has
    #: ended, that bound no longer counts and the main clock alone applies (DORA RTS
    #: 2025/301 Art 5(2): classified as major after 24 hours, 4 hours from classification).
    late_anchor_restarts: bool = False
    variants: list[DeadlineVariant] = []
    #: One notice per place among these (ISO codes or groups) with affected residents, each to
    #: the authority of that place in ``Regime.authorities`` (GDPR without an EU establishment).
    per_place: list[str] | None = None
    in_force_from: date | None = None
    in_force_until: date | None = None
    content_fields: list[ContentCode]
    content_confidence: Confidence | None = None
    substitute_notice: SubstituteNotice | None = None
    citation: Citation


class PolicyProfile(StrictModel):
    """The operator's own published promise (the ``policy`` regime).

    ``window_days`` None means the policy promises no number of days; ``window_term`` then
    says what it does promise ("promptly").
    """

    name: str = "default"
    window_days: int | None = Field(default=30, gt=0)
    window_term: str = "promptly"
    anchor: Anchor = "aware"
    channels: list[Channel] = Field(min_length=1)
    announcement_fallback: bool
    regulator_reporting: bool
    content_fields: list[ContentCode] = []
    citation: Citation

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


class PhaseWords(StrictModel):
    """A report phase's deadline and legal basis, in the authority's own words."""

    deadline: str = Field(min_length=2)
    citation: str = Field(min_length=2)


class InLanguage(StrictModel):
    """The regime in the language its authority works in: its reports are written in it,
    every word of ours included. Each regulator report's recipient and phase must have its
    words here, so a pack never falls back to English for part of a page."""

    language: Literal["zh-CN", "ja"]
    name: str = Field(min_length=2)
    #: A recipient as the obligations name it (or the regulators joined with ", ") -> the
    #: authority's own name for it.
    recipients: dict[str, str] = Field(min_length=1)
    phases: dict[Phase, PhaseWords] = Field(min_length=1)


class RegimeVersion(StrictModel):
    """The regime's obligations from a date on (amended law), or as proposed.

    The version in force on the local date of the incident's earliest anchor applies; a
    ``proposed`` version is shown in the catalogue and never applied until it is enacted
    and given a date in force.
    """

    in_force_from: date | None = None
    status: Literal["in_force", "proposed"] = "in_force"
    note: str | None = None
    obligations: list[ObligationSpec] = Field(min_length=1)
    citation: Citation

    @model_validator(mode="after")
    def _dated(self) -> RegimeVersion:
        if self.status == "in_force" and self.in_force_from is None:
            raise ValueError("a version in force needs in_force_from")
        return self


class Regime(StrictModel):
    """A legal regime (or the operator's policy): one file in ``rules/``."""

    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: str
    source: str
    citation: Citation
    regulators: list[str] = Field(min_length=1)
    timezone: str
    timezone_from_profile: Literal["gdpr_lead_authority_timezone", "timezone"] | None = None
    holidays: HolidayCalendar | None = None
    applicability: Applicability
    records: Citation | None = None
    exemptions: list[Exemption] = []
    obligations: list[ObligationSpec] = []
    promise: PolicyProfile | None = None
    groups: dict[str, list[str]] = {}
    in_language: InLanguage | None = None
    authorities: list[Authority] = []
    versions: list[RegimeVersion] = []

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _consistent(self) -> Regime:
        self._check_places()
        if self.promise is None and not self.obligations:
            raise ValueError("a regime needs obligations (or a promise, for the policy)")
        if self.promise is not None and self.obligations:
            raise ValueError("the policy regime derives its obligations from promise")
        self._check_obligations("obligations", self.obligations)
        for number, version in enumerate(self.versions):
            self._check_obligations(f"versions.{number}.obligations", version.obligations)
        dates = [v.in_force_from for v in self.versions if v.in_force_from is not None]
        if dates != sorted(dates):
            raise ValueError("versions: list them in order of in_force_from")
        names = [a.name for a in self.authorities]
        if len(set(names)) != len(names):
            raise ValueError("authorities: a name is listed twice")
        self._check_in_language()
        return self

    @property
    def confidence(self) -> Confidence:
        """The regime's own certainty: its citation and its scope's, the weaker."""
        return weakest(self.citation, self.applicability.citation)

    def citations(self) -> list[Citation]:
        """Every cited fact of the law in the file: the regime, its scope, each obligation
        (of every version) and each exemption; authorities' contact data are not among them."""
        specs = [*self.obligations, *(s for v in self.versions for s in v.obligations)]
        found = [self.citation, self.applicability.citation, *(s.citation for s in specs)]
        return found + [e.citation for e in self.exemptions]

    def facts_confidence(self) -> Confidence:
        """The weakest mark of any fact in the file: what counsel should review first."""
        return weakest(*self.citations())

    def obligations_on(self, day: date | None) -> tuple[list[ObligationSpec], RegimeVersion | None]:
        """The obligations in force on ``day`` and the version they come from (None: base)."""
        chosen = None
        for version in self.versions:
            start = version.in_force_from
            if version.status == "in_force" and day and start and start <= day:
                chosen = version
        return (chosen.obligations if chosen else self.obligations), chosen

    def authority(self, name: str | None = None, place: str | None = None) -> Authority | None:
        """The authority with this name, or the one of this place."""
        for authority in self.authorities:
            if (name is not None and authority.name == name) or (
                place is not None and authority.place == place
            ):
                return authority
        return None

    def _check_obligations(self, where: str, specs: list[ObligationSpec]) -> None:
        for index, spec in enumerate(specs):
            deadlines = [spec.deadline, *spec.no_later_than, *(v.deadline for v in spec.variants)]
            for deadline in deadlines:
                if deadline.unit == "business_days" and self.holidays is None:
                    raise ValueError(f"{where}.{index}: business days need holidays")
                if deadline.after is not None and not _find(specs, deadline.after):
                    raise ValueError(f"{where}.{index}: after {deadline.after} not found")
            for extra in spec.no_later_than:
                if extra.term is not None:
                    raise ValueError(f"{where}.{index}: no_later_than needs fixed clocks")

    def recipient_of(self, spec: ObligationSpec) -> str:
        return spec.recipient or ", ".join(self.regulators)

    def _check_in_language(self) -> None:
        if self.in_language is None:
            return
        for index, spec in enumerate(self.obligations):
            if spec.audience != "regulator":
                continue
            if self.recipient_of(spec) not in self.in_language.recipients:
                raise ValueError(
                    f"obligations.{index}: in_language.recipients has no name for"
                    f" {self.recipient_of(spec)!r}"
                )
            if spec.phase not in self.in_language.phases:
                raise ValueError(f"obligations.{index}: in_language.phases has no {spec.phase!r}")

    def _check_places(self) -> None:
        places = [*self.applicability.residence, *self.applicability.home]
        for spec in [*self.obligations, *(s for v in self.versions for s in v.obligations)]:
            conditions = [spec.when, *(v.when for v in spec.variants)]
            places += [p for c in conditions if c is not None for p in _count_places(c)]
            places += spec.per_place or []
        for place in places:
            if place not in self.groups and not PLACE_CODE.match(place):
                raise ValueError(f"{place!r} is neither an ISO 3166 code nor a known group")

    def find(self, ref: ObligationRef) -> list[ObligationSpec]:
        """The obligations of this regime with the audience and phase of ``ref``."""
        return _find(self.obligations, ref)


def _find(specs: list[ObligationSpec], ref: ObligationRef) -> list[ObligationSpec]:
    return [o for o in specs if (o.audience, o.phase) == (ref.audience, ref.phase)]


def _count_places(condition: Condition) -> list[str]:
    places = list(condition.count.of) if condition.count else []
    places += (condition.established_in or []) + (condition.not_established_in or [])
    for child in condition.any_of or []:
        places += _count_places(child)
    return places


Condition.model_rebuild()
