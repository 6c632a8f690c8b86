"""Build the MIME message for an email notice; shared by the sandbox and SMTP notifiers.

Built once, as bytes. A notice is one or two text parts (plain, and HTML), and those are
written here directly: 7bit when ASCII with short lines, else base64 of UTF-8 (C code),
in exactly the form the ``email`` package's ``compat32`` generator writes
(``tests/notifiers/test_email_message.py`` compares the two). Measured in
``bench/notify.py``, the generator was over a third of a dispatcher's CPU per message
(parsing back its own parameters, folding, writing line by line); the ``EmailMessage``
API with the modern policy costs four times more again. Messages with attachments, rare,
still go through the ``email`` package. Header values are encoded here (``formataddr``,
``Header``); a non-ASCII address (it would need SMTPUTF8) is refused, and line breaks in a
name or subject are folded into spaces so they cannot inject headers.
"""

from __future__ import annotations

import base64
import hashlib
import re
from email.charset import Charset
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr

from breachflow.models.base import utcnow
from breachflow.models.delivery import Attachment, OutboundMessage

MAX_LINE = 998  # RFC 5322: longest line a part may carry unencoded
FOLD_AT = 78
_UTF8 = Charset("utf-8")  # base64 bodies and encoded-word headers
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
_LINE_ENDS = re.compile(r"\r\n|\r")  # as the generator writes lines: every end is LF


def message_id(idempotency_key: str, sender: str) -> str:
    """``<key@sender-domain>``: the same for every resend of the same ledger row."""
    domain = sender.rpartition("@")[2] or "breachflow.invalid"
    return f"<{idempotency_key}@{domain}>"


def scrub(text: str, recipient: str) -> str:
    """Replace the recipient's address in a provider's or library's message: details of
    failures reach the ledger and logs, contact details must not."""
    return re.sub(re.escape(recipient), "<recipient>", text, flags=re.IGNORECASE)[:480]


class UnbuildableMessage(ValueError):
    """This message cannot be written as MIME (e.g. a non-ASCII local part); a per-person
    permanent failure for email, never a reason to fail the batch."""


def build_email(
    msg: OutboundMessage, sender: str, organisation: str, reply_to: str | None = None
) -> bytes:
    """The whole message as it goes on the wire (LF line ends; SMTP clients add the CR).

    ``reply_to``: where a reply goes. The notice invites one ("reply to this message"), and
    the sender is usually a mailbox nobody reads."""
    if not msg.recipient.isascii() or _LINE_BREAKS.search(msg.recipient):
        raise UnbuildableMessage(
            "the email cannot be built: the address is not ASCII (SMTPUTF8 is not supported)"
        )
    headers = [
        ("From", formataddr((_one_line(organisation), sender), "utf-8")),
        ("To", formataddr((_one_line(msg.recipient_name or ""), msg.recipient), "utf-8")),
    ]
    if reply_to:
        headers.append(("Reply-To", formataddr((_one_line(organisation), reply_to), "utf-8")))
    headers += [
        ("Subject", _folded("Subject", _one_line(msg.subject))),
        ("Message-ID", msg.message_id),
        ("Date", format_datetime(utcnow())),
        ("Auto-Submitted", "auto-generated"),
        ("Content-Language", msg.locale),
    ]
    if msg.attachments:
        return _with_attachments(msg, headers)
    plain = _text_part(msg.text, "plain")
    head, payload = plain
    if msg.html:
        boundary = _boundary(msg.message_id, "alternative")
        parts = [plain, _text_part(msg.html, "html")]
        head = f'Content-Type: multipart/alternative; boundary="{boundary}"\nMIME-Version: 1.0\n'
        payload = "".join(
            f"--{boundary}\n{part_head}\n{part_payload}\n" for part_head, part_payload in parts
        )
        payload += f"--{boundary}--\n"
    own = "".join(f"{name}: {value}\n" for name, value in headers)
    return f"{head}{own}\n{payload}".encode("ascii")


def _text_part(body: str, subtype: str) -> tuple[str, str]:
    """A text part's header lines and payload: ASCII text with short lines as it is
    (7bit), anything else base64 UTF-8 in lines of 76."""
    if body.isascii() and all(len(line) <= MAX_LINE for line in body.splitlines()):
        charset, encoding, payload = "us-ascii", "7bit", _LINE_ENDS.sub("\n", body)
    else:
        charset, encoding = "utf-8", "base64"
        payload = base64.encodebytes(body.encode()).decode("ascii")
    head = (
        f'Content-Type: text/{subtype}; charset="{charset}"\n'
        f"MIME-Version: 1.0\nContent-Transfer-Encoding: {encoding}\n"
    )
    return head, payload


def _with_attachments(msg: OutboundMessage, headers: list[tuple[str, str]]) -> bytes:
    """The ``email`` package's compat32 classes, for the rare notice with attachments."""
    email: MIMEBase = _part(msg.text, "plain")
    if msg.html:
        email = MIMEMultipart("alternative", _subparts=[email, _part(msg.html, "html")])
        email.set_boundary(_boundary(msg.message_id, "alternative"))
    email = MIMEMultipart("mixed", _subparts=[email, *map(_attachment, msg.attachments)])
    email.set_boundary(_boundary(msg.message_id, "mixed"))
    for name, value in headers:
        email[name] = value
    return email.as_bytes(policy=_PREFOLDED)


class _Prefolded(Compat32):
    """Writes headers exactly as set: every value above is already encoded and folded
    (``formataddr`` and ``Header`` do it), so folding again would only cost time."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        return f"{name}: {value}{self.linesep}"


_PREFOLDED = _Prefolded()


def _part(body: str, subtype: str) -> MIMEText:
    """ASCII text with short lines as it is (7bit); anything else base64 UTF-8."""
    if body.isascii() and all(len(line) <= MAX_LINE for line in body.splitlines()):
        return MIMEText(body, subtype, "us-ascii")
    # typeshed says str, but MIMEText hands the charset to set_payload, which takes a Charset.
    return MIMEText(body, subtype, _UTF8)  # type: ignore[arg-type]


def _boundary(message_id: str, kind: str) -> str:
    """A boundary of our own: the generator would otherwise compile a regular expression
    per message to check its random one against the body."""
    return f"=_bf_{kind[:3]}_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]


def _attachment(attachment: Attachment) -> MIMEBase:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEApplication(attachment.content, subtype or "octet-stream")
    if maintype != "application":
        part.replace_header("Content-Type", attachment.content_type)
    name = _one_line(attachment.filename)
    part.add_header(
        "Content-Disposition",
        "attachment",
        filename=name if name.isascii() else ("utf-8", "", name),
    )
    return part


def _folded(name: str, value: str) -> str:
    """Short ASCII as it is; otherwise encoded words folded at 78 columns."""
    if value.isascii() and len(name) + len(value) + 2 <= FOLD_AT:
        return value
    return Header(value, _UTF8, header_name=name).encode()


def _one_line(value: str) -> str:
    return _LINE_BREAKS.sub(" ", value).strip()
