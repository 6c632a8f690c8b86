"""Render notices and reports from ``templates/`` in a sandbox.

Templates are data an operator may edit, so they run in Jinja's immutable sandbox with
``StrictUndefined`` (a misspelt field is an error, not an empty paragraph) and HTML
autoescaping, so nothing an incident's text contains can become markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

from models.errors import InvalidInput
from models.notice import NoticeContent

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@cache
def environment(root: Path = TEMPLATES) -> ImmutableSandboxedEnvironment:
    """Templates are read once per process (no ``auto_reload``): checking every file's
    mtime for every notice cost more than rendering it. Restart to pick up an edit."""
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(root),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith((".html.j2", ".xml.j2"))),
        keep_trailing_newline=True,
        auto_reload=False,
    )


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


def choose_locale(wanted: str, available: frozenset[str], default: str) -> str:
    """The person's locale if we can write in it, else one of the same language, else default."""
    if wanted in available:
        return wanted
    language = wanted.split("-")[0].lower()
    same_language = sorted(loc for loc in available if loc.split("-")[0].lower() == language)
    return same_language[0] if same_language else default
