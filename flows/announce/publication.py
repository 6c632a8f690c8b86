"""Publishing an announcement: its versions, its pages, and every destination.

The announcement is the notice's own texts (never anyone's personal data) as a page per
locale of the affected people plus a press statement, published to every configured
destination (``notifiers/announcement.py``). The version row is committed before anything
is published; each destination's outcome is recorded after it, and a destination that
failed is tried again on the next run. An update is a new version; old ones stay up.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.models.announcement import (
    Announcement,
    AnnouncementDecision,
    announcements,
    latest_decision,
)
from breachflow.models.base import utcnow
from breachflow.models.commands import get_incident, latest_notice
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.notice import NoticeContent, NoticeText, NoticeVersion
from breachflow.models.runtime import database, settings
from breachflow.models.settings import NotifierMode, Settings
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, record
from breachflow.notifiers.announcement import (
    FONT_PATH,
    LANGUAGE_LABELS,
    PAGE_TO_ROOT,
    LocalePage,
    MediaEmailPublisher,
    OutboxWebhookPublisher,
    Publication,
    Publisher,
    PublishFailed,
    StaticSitePublisher,
    WebhookPublisher,
    page_path,
)
from breachflow.notifiers.factory import email_notifier
from breachflow.rendering.environment import TEMPLATES, environment
from breachflow.rendering.notices import notice_content
from breachflow.rules.places import locale_timezone


def publish(incident_key: str, actor: str, *, update_reason: str | None = None) -> Announcement:
    """Publish the current version where it is not yet published (a new version first if
    there is none, or ``update_reason`` asks for one), and record each destination."""
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        config = config.outside_world(incident.exercise, incident.key)  # never public
        decision = latest_decision(session, incident.id)
        if decision is None or not decision.required:
            raise InvalidInput(
                f"{incident.key} has no decision to announce: breach announce {incident.key}"
                " --reason '...' records one"
            )
        versions = announcements(session, incident.id)
        if not versions or update_reason is not None:
            reason = update_reason or "; ".join(decision.grounds)
            versions.append(_new_version(session, incident, decision, reason, actor, versions))
        current = versions[-1]
        publication = _publication(session, incident, current, versions, config)
        todo = [p for p in publishers(config) if _pending(current, p.name)]
        announcement_id = current.id
    outcomes = asyncio.run(_publish_all(todo, publication))
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        current = session.get_one(Announcement, announcement_id)
        current.destinations = {**current.destinations, **outcomes}
        for name, outcome in outcomes.items():
            published = outcome["status"] == "published"
            kind = EventKind.ANNOUNCEMENT_PUBLISHED
            if not published:
                kind = EventKind.ANNOUNCEMENT_PUBLISH_FAILED
            record(
                session,
                incident,
                kind,
                actor,
                {
                    "version": current.version,
                    "destination": name,
                    **outcome,
                    "ends_at": current.ends_at.isoformat(),
                },
            )
        session.expunge(current)
    return current


def publishers(config: Settings) -> list[Publisher]:
    """The static site always; the webhook and the media list when configured."""
    chosen: list[Publisher] = [
        StaticSitePublisher(config.site, config.site_base_url, config.organisation_name)
    ]
    if config.announcement_webhook_url:
        secret = config.announcement_webhook_secret
        if secret is None:
            raise InvalidInput("BREACH_ANNOUNCEMENT_WEBHOOK_SECRET is required with the webhook")
        if config.notifier_mode is NotifierMode.SANDBOX:
            chosen.append(OutboxWebhookPublisher(config.outbox, secret.get_secret_value()))
        else:
            chosen.append(
                WebhookPublisher(config.announcement_webhook_url, secret.get_secret_value())
            )
    if config.media_emails:
        chosen.append(
            MediaEmailPublisher(email_notifier(config), config.media_emails, config.sender)
        )
    return chosen


async def _publish_all(
    todo: list[Publisher], publication: Publication
) -> dict[str, dict[str, str]]:
    outcomes: dict[str, dict[str, str]] = {}
    for publisher in todo:
        try:
            location = await publisher.publish(publication)
            outcomes[publisher.name] = {"status": "published", "location": location}
        except PublishFailed as exc:
            outcomes[publisher.name] = {"status": "failed", "detail": str(exc)}
    return outcomes


def _pending(current: Announcement, destination: str) -> bool:
    return current.destinations.get(destination, {}).get("status") != "published"


def _new_version(
    session: Session,
    incident: Incident,
    decision: AnnouncementDecision,
    reason: str,
    actor: str,
    earlier: list[Announcement],
) -> Announcement:
    notice = latest_notice(session, incident)
    if notice is None:
        raise InvalidInput(f"{incident.key} has no notice texts: breach notice set first")
    now = utcnow()
    # An update never shortens how long the announcement stays up.
    ends_at = max([now + timedelta(days=decision.min_days), *(a.ends_at for a in earlier)])
    locales = _locales(session, incident, notice.parsed(), settings())
    announcement = Announcement(
        incident_id=incident.id,
        version=len(earlier) + 1,
        notice_version=notice.version,
        locales=locales,
        reason=reason,
        sha256=hashlib.sha256(f"{notice.sha256}:{','.join(locales)}".encode()).hexdigest(),
        published_at=now,
        ends_at=ends_at,
        destinations={},
        created_by=actor,
    )
    session.add(announcement)
    session.flush()
    return announcement


def _locales(
    session: Session, incident: Incident, texts: dict[str, Any], config: Settings
) -> list[str]:
    """The locales of the affected people that we have texts and a page for, the
    default locale first; always at least the default."""
    spoken = set(
        session.scalars(select(Subject.locale).distinct().where(Subject.incident_id == incident.id))
    )
    pages = {p.name.split(".")[1] for p in TEMPLATES.glob("announcement/page.*.html.j2")}
    usable = sorted(loc for loc in spoken if loc in texts and loc in pages)
    default = config.default_locale if config.default_locale in texts else next(iter(texts))
    return [default, *(loc for loc in usable if loc != default)]


def _publication(
    session: Session,
    incident: Incident,
    current: Announcement,
    versions: list[Announcement],
    config: Settings,
) -> Publication:
    """Render every locale's page and press statement for ``current``."""
    notice = session.scalars(
        select(NoticeVersion).where(
            NoticeVersion.incident_id == incident.id,
            NoticeVersion.version == current.notice_version,
        )
    ).one()
    texts = notice.parsed()
    env = environment()
    site = config.site_base_url
    pages: dict[str, LocalePage] = {}
    for locale in current.locales:
        content = public_notice(incident, texts[locale], locale, config)
        context = {
            "version": current.version,
            "published_at": current.published_at.isoformat(),
            "ends_at": current.ends_at.isoformat(),
            "page_url": site + page_path(incident.key, locale),
            "font_href": PAGE_TO_ROOT + FONT_PATH,
            "history": [
                {
                    "version": v.version,
                    "published_at": v.published_at.isoformat(),
                    "reason": v.reason,
                    "href": site + page_path(incident.key, locale, v.version),
                }
                for v in versions
                if v.version != current.version
            ],
            "other_locales": [
                {
                    "locale": other,
                    "label": LANGUAGE_LABELS.get(other, other),
                    # A sibling page: relative, so it works wherever the site is served.
                    "href": f"{other}.html",
                }
                for other in current.locales
                if other != locale
            ],
        }
        pages[locale] = LocalePage(
            locale=locale,
            title=content.subject_line,
            summary=content.what_happened,
            page=env.get_template(f"announcement/page.{locale}.html.j2").render(
                n=content, a=context
            ),
            press=env.get_template(f"announcement/press.{locale}.txt.j2").render(
                n=content, a=context
            ),
        )
    return Publication(
        incident_key=incident.key,
        version=current.version,
        published_at=current.published_at,
        ends_at=current.ends_at,
        reason=current.reason,
        pages=pages,
    )


def public_notice(
    incident: Incident, text: NoticeText, locale: str, config: Settings
) -> NoticeContent:
    """A notice read by anyone (the announcement, the page SMS and push link to): no
    person's residence to go by, so times are in the zone the locale's region names
    (``zh-CN``: Beijing time), else in UTC."""
    zone = locale_timezone(locale)
    return notice_content(incident, text, locale, config, timezone=zone)
