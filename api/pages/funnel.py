"""The incident page's notification section: who was reached, and each channel's funnel
(queued, sent, delivered, failed, fallen back, unreachable) as SVG bars, no script."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from breachflow.models import ledger
from breachflow.models.incident import Incident

BAR_X, BAR = 130, 320  # where the funnel's bars start, and the longest one
CHANNEL_NAMES = {
    "push": "Push",
    "email": "Email",
    "sms": "SMS",
    "voice": "Phone call",
    "letter": "Letter",
    ledger.NO_CHANNEL: "No channel",
}
FUNNEL = [  # (field, label, colour)
    ("queued", "queued", "#64748b"),
    ("sent", "sent", "#2563eb"),
    ("delivered", "delivered", "#15803d"),
    ("failed", "failed", "#dc2626"),
    ("fell_back", "fallen back", "#d97706"),
    ("unreachable", "unreachable", "#7f1d1d"),
]


def notification(session: Session, incident: Incident) -> dict[str, Any]:
    people = ledger.people(session, incident)
    channels = ledger.funnel(session, incident)
    return {
        "affected": people.affected,
        "reached": people.reached,
        "unreachable": people.unreachable,
        "pending": people.pending,
        "channels": [_chart(c) for c in channels],
        "reasons": list(ledger.unreachable_reasons(session, incident).items())[:20],
    }


def _chart(row: ledger.ChannelFunnel) -> dict[str, Any]:
    """One channel's funnel as SVG geometry: a bar per stage, scaled to what was queued."""
    widest = max(row.queued, 1)
    bars = []
    for index, (field, label, colour) in enumerate(FUNNEL):
        count = getattr(row, field)
        width = round(BAR * count / widest)
        inside = width > BAR - 40  # no room after the bar: the number goes in it
        bars.append(
            {
                "label": label,
                "count": count,
                "colour": colour,
                "y": 6 + index * 24,
                "width": width,
                "inside": inside,
                "text_x": BAR_X + width + (-6 if inside else 6),
            }
        )
    name = CHANNEL_NAMES.get(row.channel, row.channel)
    return {
        "id": row.channel,
        "channel": name,
        "bars": bars,
        "height": 12 + len(FUNNEL) * 24,
        "in_progress": row.in_progress,
    }
