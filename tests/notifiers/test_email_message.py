"""The email notice as bytes: written directly, in the form the ``email`` package writes.

``build_email`` writes its text parts itself (it is a third of a dispatcher's CPU
otherwise). The oracle here is the ``email`` package's compat32 generator, fed the same
parts: every combination below must come out byte for byte the same, and parse back, with
the modern parser, into the texts, names and subject that went in.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email import message_from_bytes
from email.charset import Charset
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import default

import pytest

from breachflow.models.delivery import Channel, OutboundMessage
from breachflow.notifiers import email_message
from breachflow.notifiers.email_message import MAX_LINE, UnbuildableMessage, build_email

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
TEXTS = [
    "Dear Zhang Wei,\nwe are writing to tell you...\n",
    "Windows line ends\r\nand a lone\rreturn\n",
    "no final newline",
    "",
    "尊敬的张伟：\n您的个人信息……\n",
    "x" * (MAX_LINE + 1) + "\nA line too long for 7bit.\n",
    "accented é\n",
    "blank lines\n\n\nbetween\n\n",
]
HTMLS = [None, "<p>Dear Zhang Wei</p>\n", "<p>尊敬的张伟</p>", "<p>" + "y" * 1100 + "</p>"]
NAMES = [None, "Zhang Wei", "张伟", 'O\'Brien, "Jr"', "Two\nLines"]
SUBJECTS = ["About your data", "关于您的个人信息", "A long subject line " * 6]


def notice(text: str, html: str | None, name: str | None, subject: str) -> OutboundMessage:
    return OutboundMessage(
        notification_id=7,
        message_id="<k7@example.org>",
        channel=Channel.EMAIL,
        recipient="person@example.net",
        recipient_name=name,
        locale="zh-CN",
        subject=subject,
        text=text,
        html=html,
    )


def oracle(msg: OutboundMessage, reply_to: str | None) -> bytes:
    """The same message through the ``email`` package (its compat32 classes)."""

    def part(body: str, subtype: str) -> MIMEText:
        short = all(len(line) <= MAX_LINE for line in body.splitlines())
        if body.isascii() and short:
            return MIMEText(body, subtype, "us-ascii")
        return MIMEText(body, subtype, Charset("utf-8"))  # type: ignore[arg-type]

    email: MIMEBase = part(msg.text, "plain")
    if msg.html:
        email = MIMEMultipart("alternative", _subparts=[email, part(msg.html, "html")])
        email.set_boundary(email_message._boundary(msg.message_id, "alternative"))
    for name, value in email_message_headers(msg, reply_to):
        email[name] = value
    return email.as_bytes(policy=email_message._PREFOLDED)


def email_message_headers(msg: OutboundMessage, reply_to: str | None) -> list[tuple[str, str]]:
    """Read back the headers ``build_email`` wrote, to hand the oracle the same values."""
    built = build_email(msg, "noreply@example.org", "Example Ltd", reply_to)
    head = built.split(b"\n\n", 1)[0].decode("ascii")
    skip = ("Content-Type", "MIME-Version", "Content-Transfer-Encoding")
    headers: list[tuple[str, str]] = []
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):  # a folded value goes on
            name, value = headers.pop()
            headers.append((name, f"{value}\n{line}"))
        else:
            name, _, value = line.partition(": ")
            headers.append((name, value))
    return [(name, value) for name, value in headers if name not in skip]


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(email_message, "utcnow", lambda: NOW)


def test_every_combination_is_written_as_the_email_package_writes_it():
    combinations = itertools.product(TEXTS, HTMLS, NAMES, SUBJECTS, [None, "reply@example.org"])
    for text, html, name, subject, reply_to in combinations:
        msg = notice(text, html, name, subject)
        built = build_email(msg, "noreply@example.org", "Example Ltd", reply_to)
        assert built == oracle(msg, reply_to), (text[:20], html, name, subject)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("html", HTMLS)
def test_it_parses_back_into_what_went_in(text, html):
    msg = notice(text, html, "张伟", "关于您的个人信息")
    parsed = message_from_bytes(
        build_email(msg, "noreply@example.org", "Example Ltd", "reply@example.org"),
        policy=default,
    )
    assert parsed["Subject"] == "关于您的个人信息"
    assert parsed["To"].addresses[0].display_name == "张伟"
    assert parsed["To"].addresses[0].addr_spec == "person@example.net"
    assert parsed["Reply-To"].addresses[0].addr_spec == "reply@example.org"
    assert parsed["Message-ID"] == "<k7@example.org>"
    assert parsed["Date"].datetime == NOW
    plain = parsed.get_body(("plain",))
    assert plain is not None
    # Line ends become LF on the way (the generator's rule); the text is otherwise intact.
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert plain.get_content().replace("\r\n", "\n") == expected
    if html:
        html_part = parsed.get_body(("html",))
        assert html_part is not None and html_part.get_content() == html
    else:
        assert not parsed.is_multipart()


def test_a_line_break_in_a_name_or_subject_cannot_add_a_header():
    msg = notice("text\n", None, "Eve\nBcc: victim@example.com", "Hi\r\nBcc: x@example.com")
    head = build_email(msg, "noreply@example.org", "Example Ltd").split(b"\n\n", 1)[0]
    assert not [line for line in head.split(b"\n") if line.startswith(b"Bcc")]


def test_a_non_ascii_address_is_refused_for_that_person():
    msg = notice("text\n", None, None, "Hi").model_copy(update={"recipient": "张@example.cn"})
    with pytest.raises(UnbuildableMessage, match="not ASCII"):
        build_email(msg, "noreply@example.org", "Example Ltd")
