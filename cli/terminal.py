"""What reaches a terminal: text from the record, never instructions to the terminal.

Alert titles, public reports, notice texts and timeline details come from outside; an ESC
in one of them would let its author clear the screen, fake colours or plant an OSC 8 link
in `breach list`, `triage` or `timeline`. Every console of the CLI is a ``SafeConsole``:
Rich's own styles still reach the terminal, but the text it was handed is cleaned first.
Every table is a ``SafeTable``: Rich markup in a value (``[link=…]``) stays text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

#: C0 controls but tab and newline, DEL, C1 controls (8-bit CSI and OSC among them), and the
#: bidirectional overrides that make text read otherwise than it is stored.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without control characters: each becomes U+FFFD, so a reader sees that
    something was there."""
    return CONTROLS.sub("\ufffd", text)


class SafeConsole(Console):
    """A Rich console that writes the text it renders without control characters; the
    control segments Rich makes itself (cursor moves, styles) are left as they are."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        cleaned = (
            Segment(printable(text), style, control) if control is None else segment
            for segment in buffer
            for text, style, control in (segment,)
        )
        return super()._render_buffer(cleaned)


class SafeTable(Table):
    """A table whose string cells are text, never Rich markup: an alert titled
    ``[link=https://…]urgent[/link]`` shows those characters instead of planting a link in
    ``breach triage``. A cell meant to be styled is a ``Text`` (``styled``)."""

    def __init__(self, *headers: str, title: str | None = None, **options: object) -> None:
        # A title may carry a record's text (an incident's title): text too.
        super().__init__(*headers, title=Text(title) if title else None, **options)  # type: ignore[arg-type]

    def add_row(self, *renderables: RenderableType | None, **options: object) -> None:
        cells = [Text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, **options)  # type: ignore[arg-type]


def styled(markup: str) -> Text:
    """A cell with our own colours: ``markup`` is ours, every value in it passed through
    ``rich.markup.escape`` first."""
    return Text.from_markup(markup)
