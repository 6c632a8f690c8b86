"""Runbook instructions are Markdown an operator edits: rendered as text, never as HTML."""

from __future__ import annotations

from breachflow.rendering.markdown import instructions_html


def test_the_markdown_of_a_runbook_is_text_not_html():
    html = instructions_html("Run `breach triage`. <script>x()</script> [go](javascript:x())")
    assert "<code>breach triage</code>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert (
        str(instructions_html("[docs](https://example.org)")).count('href="https://example.org"')
        == 1
    )
