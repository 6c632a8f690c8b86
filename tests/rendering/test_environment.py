"""Templates are data an operator edits: the sandbox bounds what one render may build and
how long it may take (``{{ 'a' * 10**10 }}`` once took 22.5 GB before the kernel killed it)."""

from __future__ import annotations

import time

import pytest

from breachflow.models.errors import InvalidInput
from breachflow.rendering import environment as rendering
from breachflow.rendering.environment import environment

HOSTILE = {
    "{{ 'a' * 10**10 }}": "over 1,000,000 items",
    "{{ ['a'] * 10**7 }}": "over 1,000,000 items",
    "{{ 10 ** 10000000 }}": "too large a number",
    "{{ '%999999999d' % 1 }}": "% format",
    "{{ '%*d' % (10**9, 1) }}": "% format",
    "{{ 'a' | center(10**10) }}": "|center",
    "{{ 'a b' | wordwrap(width=10**10) }}": "|wordwrap",
    "{{ range(10**9) | list }}": "range of 1000000000 items",
}


@pytest.mark.parametrize("source", HOSTILE)
def test_an_expression_that_would_exhaust_memory_is_refused_at_once(source: str) -> None:
    started = time.process_time()
    with pytest.raises(InvalidInput, match="template \\(string\\): .*" + HOSTILE[source][:8]):
        environment().from_string(source).render()
    assert time.process_time() - started < 1


def test_a_render_that_loops_past_its_deadline_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendering, "render_seconds", lambda: 0.3)
    nested = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=r"took longer than 0\.3 s"):
        environment().from_string(nested).render()
    assert time.monotonic() - started < 5


def test_ordinary_expressions_render_as_before() -> None:
    source = "{{ 'ab' * 3 }} {{ 2 ** 8 }} {{ '%05d' % 42 }} {{ 'x' | center(5) }}|"
    assert environment().from_string(
        source + "{% for i in range(3) %}{{ i }}{% endfor %}"
    ).render() == ("ababab 256 00042   x  |012")
