"""A letter as a mail-merge template: the notice with fields the mailing vendor fills in.

Above a volume, letters go to a mailing vendor as data plus a template instead of a PDF
each (``notifiers/letter_vendor.py``). The template is our own letter template rendered
once per locale with placeholders where a person's name, address and the letter's date go,
so the vendor prints exactly the letter we would have printed. Placeholders are
``{{field}}``, the Mustache/Handlebars form that print vendors' HTML composition takes;
there is no logic in them (no Jinja): the ``{% if %}``s of our template are decided when
the template is made, which is why there is one template per locale and per "the person
has a name or not" (the greeting differs).

The proof is the template filled with a sample person's fields by ``fill``, the same
substitution the vendor makes: what the operator signs off is what the vendor merges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from markupsafe import escape

from breachflow.models.errors import InvalidInput
from breachflow.models.notice import NoticeContent
from breachflow.rendering.notices import render_notice

#: The fields a merge template holds; the vendor's data file has a column for each.
TEMPLATE_FIELDS = ("recipient_name", "address_block", "letter_date")
#: Where our letter templates print the date (the PDF renderer fills it with a stylesheet).
LETTER_DATE_SLOT = '<span class="letter-date"></span>'
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
#: Stand-ins while rendering: private-use characters, which no escaping changes.
_SENTINEL = "\ue000{}\ue001"

#: Fictitious people the proofs are printed for, by language: never a real person's data.
SAMPLES = {
    "en": ("Alex Sample", "Flat 1, 1 Sample Street\nSampletown\nSA1 1AA\nUnited Kingdom"),
    "zh": ("样例", "示例市示例区示例路1号\n1栋1单元101室\n100000\n中国"),
}


def placeholder(field: str) -> str:
    return "{{" + field + "}}"


def merge_template(content: NoticeContent) -> str:
    """The letter of ``content`` (its texts and locale; named or not) with placeholders.

    Refuses texts that themselves contain ``{{``: the vendor's merge would take it for a
    field and print something else than what was approved.
    """
    named = _SENTINEL.format("recipient_name") if content.recipient_name else None
    address = _SENTINEL.format("address_block")
    html = render_notice(
        content.model_copy(update={"recipient_name": named, "recipient_address": address}),
        "letter",
    ).html
    if html is None:
        raise InvalidInput(f"no letter page template for locale {content.locale}")
    if "{{" in html:
        raise InvalidInput(
            "the notice texts contain '{{', which the mailing vendor's merge would take for a"
            " field: change the texts (breach notice set) and run again"
        )
    dated = LETTER_DATE_SLOT.replace("</span>", placeholder("letter_date") + "</span>")
    html = html.replace(LETTER_DATE_SLOT, dated)
    for field in ("recipient_name", "address_block"):
        html = html.replace(_SENTINEL.format(field), placeholder(field))
    return html


def fill(template: str, values: Mapping[str, str]) -> str:
    """Put each field's value in place of its placeholder, escaped as HTML text."""
    return _PLACEHOLDER.sub(lambda m: str(escape(values[m.group(1)])), template)


def address_block(name: str | None, address: str) -> str:
    """The address lines the window shows under the name: the template prints the name
    first, so an address that starts with it loses that line (as our own letters do)."""
    lines = [line.strip() for line in address.splitlines() if line.strip()]
    if name and lines and lines[0] == name.strip():
        lines = lines[1:]
    return "\n".join(lines)


def sample(locale: str, day: date) -> dict[str, str]:
    """The fields of the sample person a proof is printed for, in ``locale``'s language."""
    name, address = SAMPLES.get(locale.split("-")[0].lower(), SAMPLES["en"])
    return {
        "recipient_name": name,
        "address_block": address_block(name, address),
        "letter_date": letter_date(day, locale),
    }


def letter_date(day: date, locale: str) -> str:
    """A letter's date as the locale writes it: ``21 November 2026``, ``2026年11月21日``."""
    if locale.split("-")[0].lower() == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {day:%B %Y}"
