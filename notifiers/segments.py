"""How many SMS segments a text costs, so a notice is sent whole only when it is affordable.

Carriers bill and deliver an SMS in segments. A text made only of the GSM 03.38 default
alphabet (GSM-7) fits 160 septets in one segment; anything else is sent as UCS-2, 70 UTF-16
code units. A longer text is split into concatenated segments whose header takes room:
153 septets or 67 code units each. Characters of the GSM-7 extension table (``€``, ``[``...)
cost two septets (escape + code), and neither an escape pair nor a UTF-16 surrogate pair is
split across two segments, so segments are packed the way a handset would count them.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: (characters in a single segment, characters per segment once concatenated)
LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 alphabet or its extension table."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return "GSM-7"
    return "UCS-2"


def _costs(text: str, enc: Encoding) -> list[int]:
    """What each character takes: septets for GSM-7, UTF-16 code units for UCS-2."""
    if enc == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> int:
    """The number of SMS segments ``text`` is sent in (0 for an empty text)."""
    enc = encoding(text)
    costs = _costs(text, enc)
    single, concatenated = LIMITS[enc]
    if sum(costs) <= single:
        return 1 if costs else 0
    count, used = 1, 0
    for cost in costs:
        if used + cost > concatenated:
            count, used = count + 1, 0
        used += cost
    return count


def fit(text: str, short_text: str, budget: int) -> str:
    """``text`` when it fits in ``budget`` segments, else ``short_text``.

    The short text says what happened and links to the whole notice, so a person whose
    notice is too long for an affordable SMS still learns of it and where to read it all.
    """
    return text if segments(text) <= budget else short_text
