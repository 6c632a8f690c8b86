"""Letters through a mailing vendor, the orchestrating side: whether, in which waves, and
what the response waits for.

**Whether.** An incident whose letters reach ``BREACH_LETTER_VENDOR_THRESHOLD`` (counted
over its ledger: everyone queued on the letter channel, fallbacks included) hands them to
the vendor as merge data instead of a PDF each (``notifiers/letter_vendor.py``). Rows are
never deleted, so once an incident crosses the threshold it stays across it.

**Waves.** The vendor posts ``BREACH_LETTER_PIECES_PER_DAY`` letters a day. Every letter
is handed over at once, carrying the day it is to be posted: letter number ``r`` of the
incident (in queue order, 0-based) is in wave ``r // capacity``, posted that many days
after the incident's letters were first queued, and never before the day it is handed
over. We hand everything over at once rather than a wave a day because that is how print
houses plan (one job with drop dates, proofed and signed off once, capacity booked ahead),
because nothing of ours has to stay up for days to feed it, and because the data is
encrypted for the vendor alone either way. The waves follow from the queue order alone,
so two dispatchers, or a re-handover after a crash, give each letter the same day. The
forecast reads the days back from the ledger (``flows/notify/forecast.py``): letters
finish when the last wave is posted.

**Waiting.** A handed-over letter is in progress until the vendor's return file says it
was mailed (``breach letters returns``, ``returns.py``): the notify step stops there,
saying so, as the approval gate does, and ``breach run`` goes on once it is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from breachflow.models import ledger
from breachflow.models.base import utcnow
from breachflow.models.delivery import Channel, OutboundMessage
from breachflow.models.incident import Incident
from breachflow.models.notice import NoticeText
from breachflow.models.notification import Notification
from breachflow.models.settings import Settings
from breachflow.notifiers.factory import letter_folder, vendor_recipient
from breachflow.notifiers.letter_vendor import TemplateKey, VendorHandover, Wave
from breachflow.rendering.merge import merge_template
from breachflow.rendering.notices import notice_content

#: Stands for a name or an address while a merge template is rendered (only its presence
#: matters: ``merge_template`` puts placeholders in their place).
_SOMEONE = "someone"


def plan(
    session: Session, incident: Incident, rows: Sequence[ledger.Leased], config: Settings
) -> dict[int, Wave] | None:
    """Each leased letter's wave, by notification id; None when the incident's letters are
    below the threshold and go as a PDF each."""
    if not rows or not _by_vendor(session, incident, config.letter_vendor_threshold):
        return None
    letters = (Notification.incident_id == incident.id, Notification.channel == Channel.LETTER)
    first_queued = session.scalar(select(func.min(Notification.queued_at)).where(*letters))
    assert first_queued is not None  # ``rows`` are among them
    ids = sorted(row.id for row in rows)
    before = session.scalar(select(func.count()).where(*letters, Notification.id < ids[0])) or 0
    in_order = session.scalars(
        select(Notification.id)
        .where(*letters, Notification.id.between(ids[0], ids[-1]))
        .order_by(Notification.id)
    ).all()
    number = {row_id: before + n for n, row_id in enumerate(in_order)}
    capacity = config.letter_pieces_per_day
    today = utcnow().date()
    waves = {}
    for row_id in ids:
        wave = number[row_id] // capacity if capacity else 0
        waves[row_id] = Wave(wave, max(first_queued.date() + timedelta(days=wave), today))
    return waves


def _by_vendor(session: Session, incident: Incident, threshold: int) -> bool:
    """Whether the incident has ``threshold`` letters or more (a count that stops there)."""
    if threshold == 0:
        return True
    some = (
        select(Notification.id)
        .where(Notification.incident_id == incident.id, Notification.channel == Channel.LETTER)
        .limit(threshold)
        .subquery()
    )
    return (session.scalar(select(func.count()).select_from(some)) or 0) >= threshold


def handover(
    config: Settings,
    incident: Incident,
    notice_version: int,
    texts: dict[str, NoticeText],
    messages: Sequence[OutboundMessage],
    waves: dict[int, Wave],
) -> VendorHandover:
    """The notifier for one batch: the vendor's key first (refused before anything is
    rendered or written), then a merge template for each locale and greeting the batch has."""
    recipient = vendor_recipient(config)
    templates: dict[TemplateKey, str] = {}
    for locale, named, zone in {
        (msg.locale, bool(msg.recipient_name), msg.timezone) for msg in messages
    }:
        content = notice_content(
            incident,
            texts[locale],
            locale,
            config,
            name=_SOMEONE if named else None,
            address=_SOMEONE,
            timezone=zone,
        )
        templates[locale, named, zone] = merge_template(content)
    return VendorHandover(
        letter_folder(config),
        recipient=recipient,
        organisation=config.organisation_name,
        incident_key=incident.key,
        notice_version=notice_version,
        templates=templates,
        waves=waves,
    )


def awaiting_returns(session: Session, incident: Incident) -> str | None:
    """What notification waits for while letters are with the vendor, or None."""
    letters, last_day = ledger.with_vendor(session, incident)
    if not letters:
        return None
    return (
        f"the mailing vendor's return file ({letters:,} letter{'' if letters == 1 else 's'}"
        f" handed over, the last to be posted on {last_day}): import it with"
        f" `breach letters returns {incident.key} FILE`"
    )
