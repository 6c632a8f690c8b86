"""What reaches a terminal: text from the record, never instructions to the terminal.

Alert titles, public reports, notice texts and timeline details come from outside; an ESC
in one of them would let its author clear the screen, fake colours or plant an OSC 8 link
in `breach list`, `triage` or `timeline`. Every console of the CLI is a ``SafeConsole``:
Rich's own styles still reach the terminal, but the text it was handed is cleaned first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.console import Console
from rich.segment import Segment

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
