"""Breach-notification law as data: one YAML file per regime, and the engine that reads it.

``load_rules()`` validates every ``rules/<regime>.yaml`` against :mod:`rules.schema`;
``evaluate(facts, regimes, org, policy)`` answers, for every obligation of every regime,
whether it applies (and why), by when, saying what, citing which source and how sure the
source is (✓ checked, ~ secondary, U unverified default the operator may override).

Deadline conventions:

- An hours or calendar-days deadline is the anchor instant plus that duration (elapsed
  time: 30 calendar days = 30 × 24 h; a daylight-saving change does not shift it).
- A business-days deadline ends at 23:59:59 local time, in the regulator's time zone, of
  the Nth business day after the anchor's local date, skipping weekends and that
  jurisdiction's public holidays (``holidays`` package, country + optional subdivision).
- "Without undue delay", "as soon as practicable", "immediately" and the like have no
  fixed instant: the deadline is null and ``deadline_rule`` says so; for notices to
  individuals the policy deadline is the working limit.
- An obligation whose anchor (detected, aware, determined, assessed, discovered,
  contained, handling_ended, classified_major, corrective_measure) is not known yet has a
  null deadline, and ``deadline_rule`` names the missing anchor.
- An obligation with several clocks (``no_later_than``: DORA's 4 hours after
  classification and 24 hours after awareness) is due at the earliest fixed instant among
  them; a clock whose anchor is unknown does not count until it is known.
- A regime with ``versions`` (an amended law) applies the version in force on the local
  date of the earliest known anchor; a ``proposed`` version is listed, never applied.
- An obligation with ``per_place`` (GDPR without an EU establishment) becomes one
  obligation per place with residents, each to that place's authority and in its zone.
- Every obligation carries ``confidence``: the weakest mark among the regime's, its
  scope's and its own citations, so that a U anywhere in the chain shows on the answer.
- "In force" is judged on the local date (regulator's time zone) of the obligation's
  anchor, or of the earliest known anchor when that one is missing.
- Risk not yet assessed counts as meeting any risk test: a duty is assumed until an
  assessment rules it out. The same goes for an SEC materiality determination not yet made.
- The regulator's time zone is fixed per regime, except the GDPR lead authority's
  (``OrganisationProfile.gdpr_lead_authority_timezone``, default Europe/Brussels) and the
  operator's own (``OrganisationProfile.timezone``, default UTC) for the policy.
"""

from breachflow.rules.engine import evaluate, notification_window, ruleset_fingerprint
from breachflow.rules.facts import IncidentFacts, Obligation, OrganisationProfile
from breachflow.rules.loader import RuleFileError, load_regime, load_rules
from breachflow.rules.policy import default_policy, load_policy
from breachflow.rules.schema import PolicyProfile, Regime
from breachflow.rules.vocab import RULES_DIR

__all__ = [
    "RULES_DIR",
    "IncidentFacts",
    "Obligation",
    "OrganisationProfile",
    "PolicyProfile",
    "Regime",
    "RuleFileError",
    "default_policy",
    "evaluate",
    "load_policy",
    "load_regime",
    "load_rules",
    "notification_window",
    "ruleset_fingerprint",
]
