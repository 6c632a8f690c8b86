"""Runbook instructions, written in Markdown, as HTML for the pages.

The runbooks are data an operator edits (``runbooks/*.md``), so what they hold is treated
as text: CommonMark with raw HTML turned off (a ``<script>`` shows as those characters),
and markdown-it's own link check, which refuses ``javascript:`` and ``data:`` links.
"""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from markupsafe import Markup


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False})


def instructions_html(text: str) -> Markup:
    """``text`` (Markdown) as HTML that is safe to put in a page as it is."""
    return Markup(_parser().render(text))  # noqa: S704 - raw HTML is off, links are checked
