"""Where a public announcement goes: a static site, a signed webhook, the media list.

Each publisher takes one rendered :class:`Publication` (a version of an announcement, in
every locale) and returns where it now is; it raises :class:`PublishFailed` when it could
not publish, and the flow records that and tries that destination again on its next run.
Publishing the same version twice gives the same result, so a retry after a crash is
harmless. Like the notice channels, each has a sandbox twin: the static site is the same
class writing under ``.breach/site``; the webhook writes the signed request it would send
to the outbox; the media email goes through the email notifier, which is the outbox in
sandbox mode.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from breachflow.models.delivery import DeliveryStatus, OutboundMessage
from breachflow.models.files import write_atomically
from breachflow.notifiers.base import Notifier
from breachflow.notifiers.email_message import message_id
from breachflow.rendering.environment import environment
from breachflow.rendering.fonts import web_font

LANGUAGE_LABELS = {"en": "English", "zh-CN": "中文"}
SIGNATURE_HEADER = "Breachflow-Signature"


class PublishFailed(Exception):
    """The destination did not take the announcement; the reason holds no personal data."""


@dataclass(frozen=True)
class LocalePage:
    locale: str
    title: str
    summary: str  # the basic situation, for the feed and the webhook
    page: str  # the whole HTML page of this version
    press: str  # the short press statement


@dataclass(frozen=True)
class Publication:
    incident_key: str
    version: int
    published_at: datetime
    ends_at: datetime
    reason: str
    pages: dict[str, LocalePage]  # by locale, the default locale first
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions

    @property
    def slug(self) -> str:
        return f"{self.incident_key}-v{self.version}"


class Publisher(Protocol):
    name: str

    async def publish(self, publication: Publication) -> str: ...


FONT_PATH = "fonts/cjk-sc.woff2"
#: From a page (``announcements/<INC>/…``) back to the site's root: every page of an
#: announcement, current or kept version, sits in the same folder.
PAGE_TO_ROOT = "../../"


def page_path(incident_key: str, locale: str, version: int | None = None) -> str:
    """Site-relative path of a page: the current version, or one kept version."""
    suffix = f".v{version}" if version else ""
    return f"announcements/{incident_key}/{locale}{suffix}.html"


class StaticSitePublisher:
    """Writes the pages, an index of every announcement and an Atom feed into a folder.

    Every file is written beside its target and renamed into place, so a web server never
    serves half a page. Version pages are written first and never changed; the current
    pages, then the index and the feed follow, so every link they hold already works.
    ``announcements.json`` in the folder is the list the index and feed are made from;
    a lock file keeps two publishers from rewriting it at once.
    """

    name = "site"

    def __init__(self, directory: Path, site_url: str, organisation: str) -> None:
        self.directory = directory
        self.site_url = site_url if site_url.endswith("/") else site_url + "/"
        self.organisation = organisation

    async def publish(self, publication: Publication) -> str:
        try:
            with self._locked():
                self._write(publication)
        except OSError as exc:
            raise PublishFailed(f"site folder not writable: {exc.strerror or exc}") from None
        return self.site_url + page_path(publication.incident_key, _first(publication))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: the index and the feed are read, changed and rewritten,
        and two incidents published at once from two processes must both stay listed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, pub: Publication) -> None:
        self._write_font(pub)
        for locale, page in pub.pages.items():
            write_atomically(
                self.directory / page_path(pub.incident_key, locale, pub.version), page.page
            )
        for locale, page in pub.pages.items():
            write_atomically(self.directory / page_path(pub.incident_key, locale), page.page)
        entries = self._entries(pub)
        write_atomically(self.directory / "announcements.json", json.dumps(entries, indent=1))
        env = environment()
        index = env.get_template("announcement/index.html.j2").render(
            entries=entries,
            organisation=self.organisation,
            feed_href="feed.xml",
            font_href=FONT_PATH,
        )
        write_atomically(self.directory / "index.html", index)
        feed = env.get_template("announcement/feed.xml.j2").render(
            organisation=self.organisation,
            feed_id=self._tag(min(e["published_at"] for e in entries), "announcements"),
            updated=max(e["updated"] for e in entries),
            site_url=self.site_url,
            entries=[item for e in entries for item in self._feed_entries(e)],
        )
        write_atomically(self.directory / "feed.xml", feed)

    def _write_font(self, pub: Publication) -> None:
        """The CJK web font, cut to every character the site's pages use, written before
        the pages that need it."""
        text = [page.page for page in pub.pages.values()]
        text += [p.read_text(encoding="utf-8") for p in self.directory.rglob("*.html")]
        write_atomically(self.directory / FONT_PATH, web_font("".join(text)))

    def _entries(self, pub: Publication) -> list[dict[str, Any]]:
        """The site's list with this publication in it, newest first."""
        listing = self.directory / "announcements.json"
        entries = json.loads(listing.read_text()) if listing.exists() else []
        entries = [e for e in entries if e["incident_key"] != pub.incident_key]
        first = pub.pages[_first(pub)]
        entries.append(
            {
                "incident_key": pub.incident_key,
                "title": first.title,
                "summary": first.summary,
                "version": pub.version,
                "published_at": pub.published_at.isoformat(),
                "updated": pub.published_at.isoformat(),
                "ends_at": pub.ends_at.isoformat(),
                "pages": [
                    {
                        "locale": locale,
                        "label": LANGUAGE_LABELS.get(locale, locale),
                        "href": page_path(pub.incident_key, locale),
                        "title": page.title,
                        "summary": page.summary,
                    }
                    for locale, page in pub.pages.items()
                ],
            }
        )
        return sorted(entries, key=lambda e: e["updated"], reverse=True)

    def _feed_entries(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """One Atom entry per language of an announcement: a reader subscribed in Chinese
        finds the Chinese page, in Chinese."""
        return [
            {
                "id": self._tag(
                    entry["published_at"],
                    f"{entry['incident_key']}/{page['locale']}/v{entry['version']}",
                ),
                "lang": page["locale"],
                "title": page.get("title", entry["title"]),
                "updated": entry["updated"],
                "published": entry["published_at"],
                "href": self.site_url + page["href"],
                "summary": page.get("summary", entry["summary"]),
            }
            for page in entry["pages"]
        ]

    def _tag(self, minted: str, specific: str) -> str:
        """A tag URI (RFC 4151): the site's host, the day the name was first used (the
        first publication), then ours. Stable across rewrites of the site."""
        host = urlsplit(self.site_url).hostname or "localhost"
        return f"tag:{host},{minted[:10]}:{quote(specific, safe='/')}"


class WebhookPublisher:
    """POSTs the announcement as JSON to a status page or CMS, signed with HMAC-SHA256.

    The receiver checks ``Breachflow-Signature: t=<unix time>,v1=<hex>``, where ``v1`` is
    HMAC-SHA256 with the shared secret over ``<t>.<body>``, and can drop repeats by the
    ``Idempotency-Key`` header (one per incident and version).
    """

    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret.encode()
        self.timeout = timeout

    async def publish(self, publication: Publication) -> str:
        body, headers = signed_request(publication, self.secret)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PublishFailed(f"webhook unreachable: {type(exc).__name__}") from None
        if not response.is_success:
            raise PublishFailed(f"webhook answered HTTP {response.status_code}")
        return self.url


class OutboxWebhookPublisher:
    """The webhook's sandbox twin: writes the signed request it would send."""

    name = "webhook"

    def __init__(self, outbox: Path, secret: str) -> None:
        self.directory = outbox / "webhook"
        self.secret = secret.encode()

    async def publish(self, publication: Publication) -> str:
        body, headers = signed_request(publication, self.secret)
        target = self.directory / f"{publication.slug}.json"
        record = {"headers": headers, "body": json.loads(body)}
        write_atomically(target, json.dumps(record, ensure_ascii=False, indent=1))
        return str(target)


def signed_request(publication: Publication, secret: bytes) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(webhook_payload(publication), ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"t={stamp},v1={signature}",
        "Idempotency-Key": f"{publication.slug}",
    }
    return body, headers


def webhook_payload(pub: Publication) -> dict[str, Any]:
    return {
        "type": "breach.announcement.published",
        "incident": pub.incident_key,
        "version": pub.version,
        "published_at": pub.published_at.isoformat(),
        "ends_at": pub.ends_at.isoformat(),
        "reason": pub.reason,
        "locales": {
            locale: {"title": page.title, "summary": page.summary, "press": page.press}
            for locale, page in pub.pages.items()
        },
    }


class MediaEmailPublisher:
    """Sends the press statement to each address on the media list, in every locale."""

    name = "media"

    def __init__(self, notifier: Notifier, addresses: list[str], sender: str) -> None:
        self.notifier = notifier
        self.addresses = addresses
        self.sender = sender

    async def publish(self, publication: Publication) -> str:
        text = "\n\n---\n\n".join(page.press for page in publication.pages.values())
        first = publication.pages[_first(publication)]
        batch = [
            OutboundMessage(
                notification_id=number,
                message_id=message_id(f"{publication.slug}-media-{number}", self.sender),
                channel="email",
                recipient=address,
                locale=_first(publication),
                subject=first.title,
                text=text,
            )
            for number, address in enumerate(self.addresses)
        ]
        results = await self.notifier.send(batch)
        failed = [r for r in results if r.status is not DeliveryStatus.SENT]
        if failed:
            raise PublishFailed(
                f"{len(failed)} of {len(batch)} media emails not sent: {failed[0].detail}"
            )
        return f"{len(batch)} media contact(s)"


def _first(publication: Publication) -> str:
    return next(iter(publication.pages))
