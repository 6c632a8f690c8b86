"""Which channel to try next for a person: the fallback chain and usable contacts.

A chain is an ordered list of channels (e.g. push → email → sms → voice → letter). It comes
from the operator's policy (its ``channels``, in order) unless the incident has its own
(``breach update --channels``). A person starts on the first channel of the chain for which
they have a usable contact; a permanent failure moves them on to the next such channel; a
person with none left is unreachable, and the reasons say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, Select, case, literal, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from breachflow.models.assessment import latest_assessment
from breachflow.models.delivery import Channel
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.subject import Subject

#: Policies speak of "phone" (a telephone call); our channel for it is ``voice``.
POLICY_WORDS = {"phone": Channel.VOICE}
#: Used when an incident was not assessed with a policy that lists channels.
DEFAULT_CHAIN = (Channel.PUSH, Channel.EMAIL, Channel.SMS, Channel.VOICE, Channel.LETTER)

# Per channel: the columns saying whether a person has a contact, and why it is unusable.
_CONTACT = {
    Channel.PUSH: (Subject.push_enc, Subject.push_problem, "push token"),
    Channel.EMAIL: (Subject.email_enc, Subject.email_problem, "email address"),
    Channel.SMS: (Subject.phone_enc, Subject.phone_problem, "phone number"),
    Channel.VOICE: (Subject.phone_enc, Subject.phone_problem, "phone number"),
    Channel.LETTER: (Subject.address_enc, Subject.address_problem, "postal address"),
}
PROBLEM_COLUMN = {
    Channel.PUSH: "push_problem",
    Channel.EMAIL: "email_problem",
    Channel.SMS: "phone_problem",
    Channel.VOICE: "phone_problem",
    Channel.LETTER: "address_problem",
}


def parse_chain(words: Iterable[str]) -> list[Channel]:
    """``["email", "phone", "im"]`` → ``[email, voice]``: policy words mapped, unknown refused.

    Channels no adapter exists for (``im``) are left out rather than refused, because a
    policy may promise them; everything else unknown is a typo worth an error.
    """
    chain: list[Channel] = []
    for word in words:
        word = word.strip().lower()
        if word == "im":
            continue
        try:
            channel = POLICY_WORDS.get(word) or Channel(word)
        except ValueError:
            known = ", ".join(c.value for c in Channel)
            raise InvalidInput(f"unknown channel {word!r}; known: {known} (or phone)") from None
        if channel not in chain:
            chain.append(channel)
    if not chain:
        raise InvalidInput("a channel chain needs at least one channel")
    return chain


def chain_for(session: Session, incident: Incident) -> list[Channel]:
    """The incident's own chain, else the policy's it was assessed with, else the default."""
    if incident.channel_chain:
        return parse_chain(incident.channel_chain)
    assessment = latest_assessment(session, incident.id)
    if assessment and assessment.policy.get("channels"):
        return parse_chain(assessment.policy["channels"])
    return list(DEFAULT_CHAIN)


def contact_columns() -> list[ColumnElement[Any] | InstrumentedAttribute[Any]]:
    """Columns to select for :func:`first_usable`: presence and problem per channel."""
    columns: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = []
    for channel in Channel:
        present, problem, _ = _CONTACT[channel]
        columns += [present.is_not(None).label(f"{channel}_present"), problem]
    return columns


def subjects_with_contacts(incident_id: int) -> Select[Any]:
    return select(Subject.id, *contact_columns()).where(Subject.incident_id == incident_id)


def first_usable_sql(chain: Sequence[Channel]) -> ColumnElement[str | None]:
    """The channel :func:`next_channel` starts a person on, as a SQL expression of their
    row (NULL when there is none), so queueing happens inside the database."""
    whens = [(usable_sql(channel), literal(channel.value)) for channel in dict.fromkeys(chain)]
    return case(*whens, else_=None)


def usable_sql(channel: Channel) -> ColumnElement[bool]:
    """:func:`usable` as SQL: a contact given, with no problem recorded (NULL or empty)."""
    present, problem, _ = _CONTACT[channel]
    return present.is_not(None) & or_(problem.is_(None), problem == "")


@dataclass(frozen=True)
class Skip:
    """A channel a person could not be tried on: with the problem, or nothing given."""

    channel: Channel
    problem: str | None


def usable(contacts: RowMapping, channel: Channel) -> Skip | None:
    """None if the person can be tried on ``channel``; otherwise why not."""
    present = contacts[f"{channel}_present"]
    problem = contacts[_CONTACT[channel][1].key]
    if present and not problem:
        return None
    return Skip(channel, str(problem) if problem else None)


def next_channel(
    contacts: RowMapping, chain: Sequence[Channel], after: Channel | None
) -> tuple[Channel | None, list[Skip]]:
    """The first usable channel after ``after`` (or from the start), and why others were not."""
    start = 0 if after is None or after not in chain else chain.index(after) + 1
    skipped: list[Skip] = []
    for channel in chain[start:]:
        skip = usable(contacts, channel)
        if skip is None:
            return channel, skipped
        skipped.append(skip)
    return None, skipped


def explain(skipped: Sequence[Skip]) -> str:
    """``email: invalid email address: …; no push token or phone number given``."""
    problems = [f"{s.channel}: {s.problem}" for s in skipped if s.problem]
    missing = list(dict.fromkeys(_CONTACT[s.channel][2] for s in skipped if not s.problem))
    if missing:
        listed = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + f" or {missing[-1]}"
        problems.append(f"no {listed} given")
    return "; ".join(problems)
