"""The Jinja environment every template of ours renders in: notices, pages, reports.

Templates are data an operator may edit, so they run in Jinja's immutable sandbox with
``StrictUndefined`` (a misspelt field is an error, not an empty paragraph) and HTML
autoescaping, so nothing an incident's text contains can become markup. They ship inside
the package (``breachflow/templates``), so an installed Breachflow finds them anywhere.

The sandbox keeps a template from reaching Python, not from exhausting the machine:
``{{ 'a' * 10**10 }}`` once took 22.5 GB before the kernel killed the process. So
``BoundedSandbox`` also bounds what one expression may build (``*``, ``**``, ``%``, the
padding filters), ``range`` to 10,000 items, and a render's time: each ``range`` step and
each call a template makes checks a deadline of ``RENDER_SECONDS``. A loop over an
incident's own data is bounded by that data.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from breachflow import shipped
from breachflow.models.errors import InvalidInput

TEMPLATES = shipped("templates")
#: What one render may take, and what one expression may build.
RENDER_SECONDS = 10.0
MAX_RANGE = 10_000
MAX_ITEMS = 1_000_000  # characters of a string, items of a list, digits' worth of bits
#: A width in a ``%`` format: ``'%999999999d' % 1`` would build a gigabyte.
_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*?(\d{7,}|\*)")
_deadline: ContextVar[float | None] = ContextVar("render_deadline", default=None)


class BoundedTemplate(Template):
    """A template whose render has a deadline (includes and macros share their page's)."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        token = _deadline.set(time.monotonic() + render_seconds())
        try:
            return super().render(*args, **kwargs)
        except SecurityError as exc:  # a bound, or the sandbox itself: the operator's to fix
            raise InvalidInput(f"template {self.name or '(string)'}: {exc}") from None
        finally:
            _deadline.reset(token)


def render_seconds() -> float:
    """How long one render may take (a function, so a test may shorten it)."""
    return RENDER_SECONDS


def _in_time() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(f"the render took longer than {render_seconds():g} s")


def _range(*args: int) -> Iterator[int]:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range of {len(numbers)} items (at most {MAX_RANGE:,})")
    for n in numbers:
        if n % 256 == 0:
            _in_time()
        yield n


def _bounded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A padding filter (``center``, ``indent``, ``wordwrap``) refusing a huge width."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        numbers = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, int)]
        if any(abs(n) > MAX_ITEMS for n in numbers):
            raise SecurityError(f"|{name} with a width over {MAX_ITEMS:,}")
        return original(*args, **kwargs)

    return checked


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with bounds on memory and time (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})
    template_class = BoundedTemplate

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        for name in ("center", "indent", "wordwrap"):
            self.filters[name] = _bounded(name, self.filters[name])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            bits = right * math.log2(abs(left)) if abs(left) > 1 and right > 0 else 0
            if bits > MAX_ITEMS:
                raise SecurityError(f"{left} ** {right} is too large a number")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise SecurityError("a % format with a width over 999,999 or a * width")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _in_time()
        return super().call(__context, __obj, *args, **kwargs)


def _check_repeat(sequence: Any, times: Any) -> None:
    sized = isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int)
    if sized and len(sequence) * times > MAX_ITEMS:
        raise SecurityError(f"an expression of over {MAX_ITEMS:,} items")


@cache
def environment(root: Path = TEMPLATES) -> BoundedSandbox:
    """Templates are read once per process (no ``auto_reload``): checking every file's
    mtime for every notice cost more than rendering it. Restart to pick up an edit."""
    return BoundedSandbox(
        loader=FileSystemLoader(root),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith((".html.j2", ".xml.j2"))),
        keep_trailing_newline=True,
        auto_reload=False,
    )
