"""What the engine is told (the incident, the organisation) and what it answers (obligations)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    field_validator,
    model_validator,
)

from breachflow.rules.schema import check_timezone
from breachflow.rules.vocab import (
    Anchor,
    Audience,
    Confidence,
    Phase,
    Risk,
    check_known,
    check_place,
    data_categories,
    sectors,
)


class OrganisationProfile(BaseModel):
    """Who the operator is: the sector flags and home jurisdictions rules test.

    ``gdpr_lead_authority_timezone`` is the time zone of the GDPR lead supervisory authority
    (default Europe/Brussels); ``timezone`` is the operator's own, used for its policy.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    sectors: set[str] = set()
    home_jurisdictions: list[str] = []
    gdpr_lead_authority_timezone: str = "Europe/Brussels"
    timezone: str = "UTC"

    @field_validator("sectors")
    @classmethod
    def _known_sectors(cls, value: set[str]) -> set[str]:
        check_known(value, sectors(), "sector flags")
        return value

    @field_validator("home_jurisdictions")
    @classmethod
    def _places(cls, value: list[str]) -> list[str]:
        return [check_place(code.upper()) for code in value]

    @field_validator("gdpr_lead_authority_timezone", "timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return check_timezone(value)


class IncidentFacts(BaseModel):
    """The facts of one incident that the rules test.

    ``anchors``: clock-start instants (timezone-aware; stored in UTC); a missing or None
    anchor leaves the obligations that run from it without a deadline. ``risk`` None means
    not yet assessed, which the engine treats as meeting any risk test (a notice duty is
    assumed until an assessment rules it out). ``residents`` counts people per ISO code; a
    person in US-CA counts under both "US" and "US-CA". ``affected_total`` defaults to the
    country-level counts plus ``unknown_residence``. ``material`` is the SEC materiality
    determination (None = not yet made).
    """

    model_config = ConfigDict(extra="forbid")

    anchors: dict[Anchor, AwareDatetime | None] = {}
    risk: Risk | None = None
    data_categories: set[str] = set()
    encrypted_key_safe: bool = False
    improper_purpose: bool = False
    material: bool | None = None
    residents: dict[str, NonNegativeInt] = {}
    unknown_residence: NonNegativeInt = 0
    affected_total: NonNegativeInt | None = None

    @field_validator("anchors")
    @classmethod
    def _utc(cls, value: dict[str, datetime | None]) -> dict[str, datetime | None]:
        return {k: v.astimezone(UTC) if v else None for k, v in value.items()}

    @field_validator("data_categories")
    @classmethod
    def _known_categories(cls, value: set[str]) -> set[str]:
        value = {v.lower() for v in value}
        check_known(value, data_categories(), "data categories")
        return value

    @field_validator("residents")
    @classmethod
    def _places(cls, value: dict[str, int]) -> dict[str, int]:
        return {check_place(code.upper()): count for code, count in value.items()}

    @model_validator(mode="after")
    def _total(self) -> IncidentFacts:
        if self.affected_total is None:
            countries = {code[:2] for code in self.residents}
            self.affected_total = self.unknown_residence + sum(
                self.residents_of(c) for c in countries
            )
        return self

    def residents_of(self, code: str) -> int:
        """People resident in ``code``; a country without its own count sums its subdivisions."""
        if code in self.residents:
            return self.residents[code]
        if len(code) == 2:
            return sum(n for c, n in self.residents.items() if c.startswith(code + "-"))
        return 0

    def anchor(self, name: Anchor) -> datetime | None:
        return self.anchors.get(name)

    def earliest_anchor(self) -> datetime | None:
        known = [v for v in self.anchors.values() if v is not None]
        return min(known) if known else None


class Contact(BaseModel):
    """Where a regulator report goes: the authority's name, portal and address."""

    name: str
    url: str | None = None
    email: str | None = None
    phone: str | None = None


class Obligation(BaseModel):
    """One notice duty for this incident, applicable or not, with its reason.

    ``deadline`` is an aware UTC instant, or None when the duty has no fixed instant (an
    open term such as "without undue delay"), when its anchor is not known yet, or when it
    does not apply; ``deadline_rule`` says which.
    """

    regime: str
    audience: Audience
    phase: Phase
    recipient: str | None = None  # None in assessments stored before it was recorded
    deadline: AwareDatetime | None
    #: When the deadline's clock started (None with no deadline, or in assessments
    #: stored before it was recorded): the deadline watchdog measures the window from it.
    starts_at: AwareDatetime | None = None
    deadline_rule: str
    applies: bool
    reason: str
    content_fields: list[str]
    citation: str
    timezone: str
    substitute_notice: str | None = None
    min_public_notice_days: int | None = Field(default=None, gt=0)
    #: The law's own name for the notice ("early warning"), when it has one.
    title: str | None = None
    #: The country or subdivision this notice is for (one report per member state).
    place: str | None = None
    contact: Contact | None = None
    #: How sure the rules are of this answer: the weakest of the regime's, its scope's and
    #: the obligation's citations (None in assessments stored before it was recorded).
    confidence: Confidence | None = None

    @property
    def name(self) -> str:
        """A name unique within one assessment: ``eu-gdpr regulator initial DE``."""
        parts = [self.regime, self.audience, self.phase]
        return " ".join(parts + ([self.place] if self.place else []))
