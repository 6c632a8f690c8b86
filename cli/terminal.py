"""What reaches a terminal: text from the record, never instructions to the terminal.

Alert titles, public reports, notice texts and timeline details come from outside; an ESC
in one of them would let its author clear the screen, fake colours or plant an OSC 8 link
in `breach list`, `triage` or `timeline`. Every console of the CLI is a ``SafeConsole``:
Rich's own styles still reach the terminal, but the text it was handed is cleaned first.
Every table is a ``SafeTable``: Rich markup in a value (``[link=…]``) stays text.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

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


#: Column headings whose values are identifiers, kept on one line.
IDENTIFIERS = frozenset({"key", "incident", "step", "id", "reference", "fingerprint", "name"})


class SafeTable(Table):
    """A table whose string cells are text, never Rich markup: an alert titled
    ``[link=https://…]urgent[/link]`` shows those characters instead of planting a link in
    ``breach triage``. A cell meant to be styled is a ``Text`` (``styled``)."""

    def __init__(self, *headers: str, title: str | None = None, **options: object) -> None:
        # A title may carry a record's text (an incident's title): text too.
        super().__init__(title=Text(title) if title else None, **options)  # type: ignore[arg-type]
        for header in headers:
            self.add_column(header)

    def add_column(self, *args: object, **options: object) -> None:
        """A column wraps, never cuts: text too long for its width goes on the next line,
        not as ``triage-re…``; an identifier (a key, an id: what one types next) is never
        broken at all (a table must read at 80 columns)."""
        options.setdefault("overflow", "fold")
        if args and args[0] in IDENTIFIERS:
            options.setdefault("no_wrap", True)
        super().add_column(*args, **options)  # type: ignore[arg-type]

    def add_row(self, *renderables: RenderableType | None, **options: object) -> None:
        cells = [Text(cell) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, **options)  # type: ignore[arg-type]


def styled(markup: str) -> Text:
    """A cell with our own colours: ``markup`` is ours, every value in it passed through
    ``rich.markup.escape`` first."""
    return Text.from_markup(markup)


def print_json(data: object) -> None:
    """``data`` as JSON on stdout, for scripts: times in ISO 8601, every non-ASCII and
    control character escaped, so nothing in it can act on a terminal either."""
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=True, indent=1) + "\n")


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


#: What an option's value is called in ``--help``, by its click type, instead of Typer's
#: ``<str>``; a flag shows no value at all.
VALUE_NAMES = {
    "str": "TEXT",
    "int": "N",
    "float": "N",
    "path": "PATH",
    "file": "FILE",
    "directory": "FOLDER",
    "datetime": "TIME",
}


def readable_help(command: Any) -> Any:
    """Name each option's value as a person would (``--note TEXT``, ``--evidence FILE``)
    and each argument by its metavar (``KEY``), across every subcommand: Typer's own help
    shows ``<str>``, ``<bool>`` and ``{key}``. Options given a metavar keep it.

    ``command`` is Typer's click command (Typer carries its own copy of click, so this
    goes by the parameters' attributes, not by click's classes)."""
    helper = command.get_help_option(command.context_class(command))  # made once, kept
    for param in [*command.params, *([helper] if helper else [])]:
        if param.param_type_name != "option":
            # An argument's name says what it is; Typer would add its type (<str>) beside.
            param.display_type_rich = lambda ctx: None
            param.metavar = param.metavar or (param.name or "value").upper()
            continue
        if param.metavar is not None:
            continue
        if param.is_flag:
            param.metavar = ""
        else:
            label = param.display_type(None).strip("<>")  # Typer's: <str>, <list[Path]> ...
            label = label.removeprefix("list[").removesuffix("]").lower()
            fallback = (param.name or "value").upper()
            param.metavar = f"[{label}]" if "|" in label else VALUE_NAMES.get(label, fallback)
    for sub in getattr(command, "commands", {}).values():
        readable_help(sub)
    return command
