"""Will everyone be told before the deadline? A forecast from the ledger and the rates.

For each channel: the rows still to send (queued, sending, to retry) divided by its rate,
which is the rate observed over the last hour where there is one (capped by the configured
limit: providers are not faster than we let them be), else the configured limit, else
unknown (email without a limit before its first batch). Letters go by the mailing
vendor's daily capacity; letters handed to the vendor count as still to send until its
return file says they were mailed, and are posted by the end of the day of their last
wave (``flows/notify/vendor.py``), after which the letters still to hand over follow at
the vendor's rate. Channels work in parallel, so the notification finishes when the
slowest does. People who will fall back to another channel later are counted where they
stand now: a forecast, not a promise, and it is recomputed at every look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from breachflow.models import ledger
from breachflow.models.base import utcnow
from breachflow.models.delivery import Channel
from breachflow.models.incident import Incident
from breachflow.models.notification import Notification, NotificationState
from breachflow.models.settings import Settings
from breachflow.notifiers.factory import rate_per_second

PENDING = (
    NotificationState.QUEUED,
    NotificationState.SENDING,
    NotificationState.FAILED_TEMPORARY,
    NotificationState.HANDED_OVER,
)
#: How far back the observed rate looks.
WINDOW = timedelta(hours=1)
#: Fewer sends than this in the window say too little about a provider's pace.
MIN_OBSERVED = 50


class Verdict(StrEnum):
    NOT_STARTED = "not started"  # nobody queued yet
    DONE = "done"  # nothing left to send
    ON_TRACK = "on track"
    LATE = "late"
    UNKNOWN = "unknown"  # a channel with work left has no rate yet
    NO_DEADLINE = "no deadline"


@dataclass(frozen=True)
class ChannelForecast:
    channel: str
    pending: int
    per_hour: float | None  # None: not known yet
    rate_from: str  # "observed", "configured" or "unknown"
    finishes_at: datetime | None


@dataclass(frozen=True)
class Forecast:
    at: datetime
    deadline: datetime | None
    channels: list[ChannelForecast]
    started: bool = True  # anyone queued at all

    @property
    def pending(self) -> int:
        return sum(c.pending for c in self.channels)

    @property
    def finishes_at(self) -> datetime | None:
        """When the slowest channel with work left finishes; None if one cannot be told."""
        busy = [c for c in self.channels if c.pending]
        if not busy:
            return self.at
        if any(c.finishes_at is None for c in busy):
            return None
        return max(c.finishes_at for c in busy if c.finishes_at)

    @property
    def verdict(self) -> Verdict:
        if not self.started:
            return Verdict.NOT_STARTED
        if not self.pending:
            return Verdict.DONE
        finish = self.finishes_at
        if finish is None:
            return Verdict.UNKNOWN
        if self.deadline is None:
            return Verdict.NO_DEADLINE
        return Verdict.LATE if finish > self.deadline else Verdict.ON_TRACK

    def text(self) -> str:
        """``finishes in 3 d 4 h; deadline in 12 d: on track``, as a person reads it."""
        verdict = self.verdict
        if verdict is Verdict.NOT_STARTED:
            return "nobody queued yet"
        if verdict is Verdict.DONE:
            return "nothing left to send"
        if verdict is Verdict.UNKNOWN:
            unknown = ", ".join(c.channel for c in self.channels if c.pending and not c.per_hour)
            return f"{self.pending:,} to send; no rate known yet for {unknown}"
        finish = self.finishes_at
        assert finish is not None
        said = f"{self.pending:,} to send, finishes in {span(finish - self.at)}"
        if self.deadline is None:
            return said
        said += f"; deadline in {span(self.deadline - self.at)}"
        if verdict is Verdict.LATE:
            return f"{said}: late by {span(finish - self.deadline)}"
        return f"{said}: on track"

    def as_dict(self) -> dict[str, object]:
        finish = self.finishes_at
        return {
            "verdict": str(self.verdict),
            "text": self.text(),
            "at": self.at.isoformat(),
            "pending": self.pending,
            "finishes_at": finish.isoformat() if finish else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "channels": [
                {
                    "channel": c.channel,
                    "pending": c.pending,
                    "per_hour": c.per_hour,
                    "rate_from": c.rate_from,
                    "finishes_at": c.finishes_at.isoformat() if c.finishes_at else None,
                }
                for c in self.channels
            ],
        }


def span(delta: timedelta) -> str:
    """``3 d 4 h``, ``5 h 10 min``, ``12 min``: a duration at the precision that matters."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def configured_per_hour(channel: str, config: Settings) -> float | None:
    """The limit we hold a channel to, per hour; None where there is none."""
    if channel == Channel.LETTER:
        return config.letter_pieces_per_day / 24 if config.letter_pieces_per_day else None
    per_second = rate_per_second(Channel(channel), config)
    return per_second * 3600 if per_second else None


def forecast(
    session: Session, incident: Incident, config: Settings, now: datetime | None = None
) -> Forecast:
    now = now or utcnow()
    pending = dict(
        session.execute(
            select(Notification.channel, func.count())
            .where(Notification.incident_id == incident.id, Notification.state.in_(PENDING))
            .group_by(Notification.channel)
        )
        .tuples()
        .all()
    )
    since = now - WINDOW
    observed = {
        channel: (count, first)
        for channel, count, first in session.execute(
            select(Notification.channel, func.count(), func.min(Notification.sent_at))
            .where(Notification.incident_id == incident.id, Notification.sent_at >= since)
            .group_by(Notification.channel)
        ).tuples()
    }
    with_vendor, last_wave = ledger.with_vendor(session, incident)
    channels = []
    for channel in sorted(set(pending) | set(observed)):
        left = pending.get(channel, 0)
        limit = configured_per_hour(channel, config)
        per_hour, rate_from = limit, "configured" if limit else "unknown"
        count, first = observed.get(channel, (0, None))
        if count >= MIN_OBSERVED and first is not None:
            hours = max((now - first).total_seconds(), 60.0) / 3600
            seen = count / hours
            per_hour, rate_from = (min(seen, limit), "observed") if limit else (seen, "observed")
        finishes = now + timedelta(hours=left / per_hour) if per_hour else None
        if channel == Channel.LETTER and last_wave is not None:
            finishes = _letters_finish(now, left - with_vendor, per_hour, last_wave)
        channels.append(ChannelForecast(channel, left, per_hour, rate_from, finishes))
    started = bool(channels) or bool(
        session.scalar(select(exists().where(Notification.incident_id == incident.id)))
    )
    return Forecast(now, incident.notice_deadline, channels, started)


def _letters_finish(
    now: datetime, to_hand_over: int, per_hour: float | None, last_wave: date
) -> datetime | None:
    """Letters with the vendor are posted by the end of their last wave's day; letters
    still to hand over follow at the vendor's rate (None when it has none)."""
    posted = datetime.combine(last_wave + timedelta(days=1), time(), UTC)
    if not to_hand_over:
        return posted
    if not per_hour:
        return None
    return max(posted, now) + timedelta(hours=to_hand_over / per_hour)
