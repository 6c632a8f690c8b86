"""A person's notice: what it says (its content and link) and its text per channel.

Dispatch, the notice page and the assessment all ask here which locales we can write in;
the dispatcher renders each person's notice through a ``NoticeRenderer``: once per batch,
locale and channel, with each person's name filled in (``render_notice`` renders whole).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import TemplateNotFound
from markupsafe import escape

from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.notice import NoticeContent, NoticeText
from breachflow.models.settings import Settings
from breachflow.rendering.environment import TEMPLATES, environment
from breachflow.rendering.fonts import CJK_START, web_font


@cache
def notice_locales(channel: str = "email") -> frozenset[str]:
    """Locales that have templates for ``channel``, read from the file names."""
    return frozenset(
        path.name.split(".")[1] for path in (TEMPLATES / "notice").glob(f"{channel}.*.txt.j2")
    )


@dataclass(frozen=True)
class RenderedNotice:
    locale: str
    subject: str
    text: str
    html: str | None = None  # email's HTML part; a letter's print page
    short_text: str | None = None  # SMS: a few lines and the link to the whole notice


#: SMS notices that do not fit the segment budget are sent as the short text with a link.
WITH_SHORT_TEXT = frozenset({"sms"})


def render_notice(content: NoticeContent, channel: str = "email") -> RenderedNotice:
    """Render one person's notice for ``channel``; ``content`` is complete by construction.

    Every channel has ``notice/<channel>.<locale>.txt.j2``; email and letters also have an
    ``.html.j2``.
    """
    env = environment()
    try:
        text = env.get_template(f"notice/{channel}.{content.locale}.txt.j2").render(n=content)
        short = (
            env.get_template(f"notice/short.{content.locale}.txt.j2").render(n=content).strip()
            if channel in WITH_SHORT_TEXT
            else None
        )
    except TemplateNotFound as exc:
        raise InvalidInput(f"no {channel} template for locale {content.locale}: {exc}") from None
    try:
        html = env.get_template(f"notice/{channel}.{content.locale}.html.j2").render(n=content)
    except TemplateNotFound:
        html = None
    subject = " ".join(content.subject_line.split())  # no header injection via newlines
    return RenderedNotice(
        locale=content.locale,
        subject=subject,
        text=text,
        html=html,
        short_text=short,
    )


#: Channels whose templates show a person's name only as text: rendered once, name filled
#: in. A letter lays the name and address out with logic of its own: rendered whole.
FILLED_CHANNELS = frozenset({"email", "sms", "voice", "push"})
#: Stands for the name while rendering: private-use characters, which no escaping changes.
_NAME = "\ue000recipient\ue001"


class NoticeRenderer:
    """Renders one batch's notices: each (locale, channel, named or not) once, the name
    filled in per person, escaped in HTML as Jinja would.

    Rendering is most of the CPU a notice costs besides sending it; a batch of 500 shares a
    handful of renders. The first fill of each render is checked against a whole render of
    that person; if a template does more with the name than show it, that render is not
    reused and every person gets a whole render.
    """

    def __init__(self) -> None:
        self._renders: dict[tuple[str, str, bool, str], RenderedNotice | None] = {}

    def render(self, content: NoticeContent, channel: str) -> RenderedNotice:
        name = content.recipient_name
        if channel not in FILLED_CHANNELS or content.recipient_address or _NAME in (name or ""):
            return render_notice(content, channel)
        # Times are in the person's zone: people of one zone share a render.
        key = (content.locale, channel, bool(name), f"{content.detected_at}/{content.aware_at}")
        if key not in self._renders:
            shared = render_notice(content.model_copy(update={"recipient_name": _NAME}), channel)
            whole = render_notice(content, channel)
            self._renders[key] = shared if _fill(shared, name) == whole else None
            return whole
        reusable = self._renders[key]
        return _fill(reusable, name) if reusable else render_notice(content, channel)


def _fill(shared: RenderedNotice, name: str | None) -> RenderedNotice:
    plain = name or ""
    return replace(
        shared,
        text=shared.text.replace(_NAME, plain),
        html=shared.html.replace(_NAME, str(escape(plain))) if shared.html else None,
        short_text=shared.short_text.replace(_NAME, plain) if shared.short_text else None,
    )


def choose_locale(wanted: str, available: frozenset[str], default: str) -> str:
    """The person's locale if we can write in it, else one of the same language, else default."""
    if wanted in available:
        return wanted
    language = wanted.split("-")[0].lower()
    same_language = sorted(loc for loc in available if loc.split("-")[0].lower() == language)
    return same_language[0] if same_language else default


def notice_link(config: Settings, incident_key: str, locale: str) -> str:
    """The page ``breach serve`` shows the whole notice on (SMS and push point to it)."""
    return f"{config.public_url.rstrip('/')}/notices/{incident_key}/{locale}"


def notice_content(
    incident: Incident,
    text: NoticeText,
    locale: str,
    config: Settings,
    *,
    name: str | None = None,
    address: str | None = None,
    link: str | None = None,
    timezone: str | None = None,
) -> NoticeContent:
    """Everything a notice shows: the incident's texts, our details, and the recipient's;
    times in the recipient's ``timezone`` (from their residence), else in UTC."""
    zone = ZoneInfo(timezone) if timezone else UTC
    detected, aware = incident.detected_at.astimezone(zone), incident.aware_at.astimezone(zone)
    return NoticeContent(
        locale=locale,
        organisation=config.organisation_name,
        incident_key=incident.key,
        detected_at=detected,
        aware_at=aware,
        detected_offset=utc_offset(detected, zone),
        aware_offset=utc_offset(aware, zone),
        recipient_name=name,
        recipient_address=address,
        link=link,
        **text.model_dump(exclude={"contact_point", "channels"}),
        contact_point=text.contact_point or config.contact_point,
    )


def utc_offset(moment: datetime, zone: tzinfo) -> str:
    """``UTC+08:00``, ``UTC−05:00`` (a true minus sign), or ``UTC`` for UTC itself."""
    if zone is UTC:
        return "UTC"
    offset = moment.utcoffset() or timedelta(0)
    sign = "+" if offset >= timedelta(0) else "\u2212"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def notice_page(content: NoticeContent) -> str:
    """The page SMS and push notices link to: the email's notice with a viewport and, when
    it has CJK characters, the CJK web font cut to them, inline (``public/notice.html.j2``)."""
    email = render_notice(content, "email")
    shown = email.html or email.text
    font = None
    if any(ord(character) >= CJK_START for character in shown):
        font = base64.b64encode(web_font(shown)).decode("ascii")
    return environment().get_template("public/notice.html.j2").render(n=content, font=font)
