"""The SMTP notifier against a real aiosmtpd server, and the sandbox outbox notifier."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.settings import SmtpTls
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.sandbox import OutboxEmailNotifier
from breachflow.notifiers.smtp import SmtpEmailNotifier

#: The ``smtp_server`` fixture: (aiosmtpd Controller, conftest.RecordingHandler).
Server = tuple[Controller, Any]

SENDER = "security-notice@example.com"
ORGANISATION = "Example Operator Ltd."
USER, PASSWORD = "notifier", "s3cret pass"


def outbound(n: int, recipient: str | None = None, **overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "notification_id": n,
        "message_id": message_id(f"INC-2026-0001-{n}-email-v1", SENDER),
        "channel": Channel.EMAIL,
        "recipient": recipient or f"person{n}@example.net",
        "recipient_name": f"Person {n}",
        "locale": "en",
        "subject": "Important: a security incident involving your personal information",
        "text": f"Dear Person {n},\n\nWHAT HAPPENED\nSomething happened.\n",
        "html": f"<p>Dear Person {n},</p><h2>What happened</h2><p>Something happened.</p>",
    }
    fields.update(overrides)
    return OutboundMessage.model_validate(fields)


def notifier_for(controller: Controller, **options: object) -> SmtpEmailNotifier:
    arguments: dict[str, object] = {
        "host": controller.hostname,
        "port": controller.port,
        "sender": SENDER,
        "organisation": ORGANISATION,
        "reply_to": "privacy@example.com",
        "timeout": 5.0,
        "pool_size": 1,
    }
    arguments.update(options)
    return SmtpEmailNotifier(**arguments)  # type: ignore[arg-type]


def by_id(results: list[DeliveryResult]) -> dict[int, DeliveryResult]:
    mapped = {r.notification_id: r for r in results}
    assert len(mapped) == len(results), "a message got more than one result"
    return mapped


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_accepted_messages_are_sent_with_the_right_headers(smtp_server: Server) -> None:
    """All accepted: status sent, provider id = Message-ID, headers and both parts right."""
    controller, handler = smtp_server
    batch = [
        outbound(1),
        outbound(
            2,
            recipient_name="王芳",
            locale="zh-CN",
            subject="重要通知：涉及您个人信息的安全事件",
            text="尊敬的王芳：\n\n【事件基本情况】\n……\n",
            html="<p>尊敬的王芳：</p><h2>事件基本情况</h2>",
        ),
    ]
    results = by_id(asyncio.run(notifier_for(controller).send(batch)))

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    assert [results[m.notification_id].provider_message_id for m in batch] == [
        m.message_id for m in batch
    ]
    received = handler.by_recipient()
    assert set(received) == {"person1@example.net", "person2@example.net"}
    for msg in batch:
        [email] = received[msg.recipient]
        assert email["Message-ID"] == msg.message_id
        assert email["Subject"] == msg.subject
        assert email["Content-Language"] == msg.locale
        assert email["Auto-Submitted"] == "auto-generated"
        [sender] = email["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (ORGANISATION, SENDER)
        # The notice says "reply to this message": the reply goes to a mailbox people read.
        [reply_to] = email["Reply-To"].addresses
        assert reply_to.addr_spec == "privacy@example.com"
        [to] = email["To"].addresses
        assert (to.display_name, to.addr_spec) == (msg.recipient_name, msg.recipient)
        text = email.get_body(("plain",))
        html = email.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().replace("\r\n", "\n") == msg.text
        assert html.get_content().strip() == msg.html


def test_a_message_without_html_is_plain_text(smtp_server: Server) -> None:
    """A message with no HTML part arrives as a single text/plain body."""
    controller, handler = smtp_server
    [result] = asyncio.run(notifier_for(controller).send([outbound(1, html=None)]))
    assert result.status is DeliveryStatus.SENT
    [email] = handler.received
    assert email.get_content_type() == "text/plain"
    assert email["Content-Language"] == "en"


def test_a_451_fails_only_that_recipient_temporarily(smtp_server: Server) -> None:
    """A 4xx for one address is failed_temporary for it alone; the rest go out on the same line."""
    controller, handler = smtp_server
    busy = "person2@example.net"
    handler.always[busy] = 451
    batch = [outbound(n) for n in (1, 2, 3)]
    results = by_id(asyncio.run(notifier_for(controller, pool_size=1).send(batch)))

    assert results[2].status is DeliveryStatus.FAILED_TEMPORARY
    assert results[2].detail and results[2].detail.startswith("451")
    assert results[1].status is results[3].status is DeliveryStatus.SENT
    assert set(handler.by_recipient()) == {"person1@example.net", "person3@example.net"}


def test_a_550_is_permanent_and_the_detail_hides_the_address(smtp_server: Server) -> None:
    """A 5xx is failed_permanent; the server's echo of the address is scrubbed from the detail."""
    controller, handler = smtp_server
    gone = "Gone.Person@Example.net"
    handler.always[gone] = 550
    batch = [outbound(1, recipient=gone), outbound(2)]
    results = by_id(asyncio.run(notifier_for(controller).send(batch)))

    failed = results[1]
    assert failed.status is DeliveryStatus.FAILED_PERMANENT
    assert failed.provider_message_id is None
    assert failed.detail is not None
    assert "550" in failed.detail and "User unknown" in failed.detail
    assert gone.lower() not in failed.detail.lower()
    assert "gone.person" not in failed.detail.lower()
    assert results[2].status is DeliveryStatus.SENT
    assert handler.attempts[gone] == 1


def test_a_pool_sends_every_message_exactly_once(smtp_server: Server) -> None:
    """With several connections, 50 messages give 50 results and 50 deliveries, no duplicates."""
    controller, handler = smtp_server
    batch = [outbound(n) for n in range(1, 51)]
    results = by_id(asyncio.run(notifier_for(controller, pool_size=6).send(batch)))

    assert sorted(results) == list(range(1, 51))
    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    assert len(handler.received) == 50
    assert sorted(e["Message-ID"] for e in handler.received) == sorted(m.message_id for m in batch)
    assert all(len(messages) == 1 for messages in handler.by_recipient().values())


def test_an_empty_batch_sends_nothing(smtp_server: Server) -> None:
    """An empty batch returns no results and does not fail."""
    controller, handler = smtp_server
    assert asyncio.run(notifier_for(controller).send([])) == []
    assert handler.received == []


def test_an_unreachable_server_defers_every_message() -> None:
    """Nothing listening: each message is deferred (not charged an attempt); no exception."""
    notifier = SmtpEmailNotifier(
        host="127.0.0.1",
        port=unused_port(),
        sender=SENDER,
        organisation=ORGANISATION,
        timeout=2.0,
        pool_size=3,
    )
    batch = [outbound(n) for n in range(1, 8)]
    results = by_id(asyncio.run(notifier.send(batch)))

    assert sorted(results) == list(range(1, 8))
    for result in results.values():
        assert result.status is DeliveryStatus.DEFERRED
        assert result.detail and "unavailable" in result.detail


def test_one_internationalised_address_does_not_sink_the_batch(smtp_server: Server) -> None:
    """An address with a non-ASCII local part (accepted at import) gets a result, not a raise.

    The notifier contract says an adapter never raises for one recipient's failure; here the
    other two people must still be reported sent, each delivered exactly once.
    """
    controller, handler = smtp_server
    batch = [outbound(1), outbound(2, recipient="josé@example.net"), outbound(3)]
    results = by_id(asyncio.run(notifier_for(controller).send(batch)))

    assert sorted(results) == [1, 2, 3]
    assert results[1].status is results[3].status is DeliveryStatus.SENT
    assert results[2].status in (DeliveryStatus.SENT, DeliveryStatus.FAILED_PERMANENT)
    assert len(handler.by_recipient()["person1@example.net"]) == 1


# --- STARTTLS and AUTH -----------------------------------------------------------------


@dataclass
class Certificate:
    cert_pem: bytes
    key_pem: bytes


@dataclass
class TlsServer:
    controller: Controller
    received: list[object]


def self_signed_certificate() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


CERTIFICATE: Certificate | None = None


def certificate() -> Certificate:
    global CERTIFICATE
    if CERTIFICATE is None:
        CERTIFICATE = self_signed_certificate()
    return CERTIFICATE


def client_context() -> ssl.SSLContext:
    """A client context that trusts exactly the test certificate (and checks the host)."""
    return ssl.create_default_context(cadata=certificate().cert_pem.decode())


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


class Sink:
    def __init__(self) -> None:
        self.received: list[object] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append((session.authenticated, message))
        return "250 2.0.0 Message accepted"


def start_tls_server(directory: Path) -> TlsServer:
    """aiosmtpd requiring STARTTLS, then AUTH with USER/PASSWORD."""
    (directory / "cert.pem").write_bytes(certificate().cert_pem)
    (directory / "key.pem").write_bytes(certificate().key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    sink = Sink()
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=unused_port(),
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    return TlsServer(controller=controller, received=sink.received)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    server = start_tls_server(tmp_path)
    try:
        yield server
    finally:
        server.controller.stop()


def tls_notifier(server: TlsServer, **options: object) -> SmtpEmailNotifier:
    arguments: dict[str, object] = {
        "tls": SmtpTls.STARTTLS,
        "username": USER,
        "password": PASSWORD,
        "tls_context": client_context(),
    }
    arguments.update(options)
    return notifier_for(server.controller, **arguments)


def test_starttls_and_auth_deliver(tls_server: TlsServer) -> None:
    """With STARTTLS, the right credentials and a context trusting the cert, mail goes out."""
    results = asyncio.run(tls_notifier(tls_server).send([outbound(1), outbound(2)]))
    assert {r.status for r in results} == {DeliveryStatus.SENT}
    assert len(tls_server.received) == 2
    assert all(authenticated for authenticated, _ in tls_server.received)  # type: ignore[misc]


def test_a_wrong_password_is_a_failed_result_not_an_exception(tls_server: TlsServer) -> None:
    """Bad credentials: every message gets a failed result and nothing is delivered."""
    notifier = tls_notifier(tls_server, password="wrong")
    results = by_id(asyncio.run(notifier.send([outbound(1), outbound(2)])))
    assert sorted(results) == [1, 2]
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert all("wrong" not in (r.detail or "") for r in results.values())
    assert tls_server.received == []


def test_an_untrusted_certificate_is_not_accepted(tls_server: TlsServer) -> None:
    """Without a context trusting the self-signed cert, the TLS handshake fails: nothing sent."""
    notifier = tls_notifier(tls_server, tls_context=ssl.create_default_context())
    results = asyncio.run(notifier.send([outbound(1)]))
    assert [r.status for r in results] == [DeliveryStatus.DEFERRED]
    assert tls_server.received == []


def test_a_sender_level_refusal_is_not_blamed_on_each_recipient(tls_server: TlsServer) -> None:
    """A 5xx before RCPT (here 530: STARTTLS/AUTH required) says nothing about the person.

    Marking every recipient failed_permanent would write the whole population off as
    unreachable because of one configuration mistake (a forgotten BREACH_SMTP_URL scheme or
    password); such a batch must stay retryable.
    """
    plain = notifier_for(tls_server.controller)  # no STARTTLS, no credentials
    results = by_id(asyncio.run(plain.send([outbound(1), outbound(2)])))
    assert sorted(results) == [1, 2]
    # Deferred: not attempted, not counted against the people; the dispatcher stops the run.
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert tls_server.received == []


# --- the sandbox outbox ------------------------------------------------------------------


def test_the_outbox_writes_one_eml_per_message(tmp_path: Path) -> None:
    """Each message becomes <outbox>/email/<message-id>.eml with the same MIME as SMTP."""
    notifier = OutboxEmailNotifier(tmp_path / "outbox", SENDER, ORGANISATION)
    batch = [outbound(n) for n in (1, 2, 3)]
    results = asyncio.run(notifier.send(batch))

    assert {r.status for r in results} == {DeliveryStatus.SENT}
    assert [r.provider_message_id for r in results] == [m.message_id for m in batch]
    files = sorted((tmp_path / "outbox" / "email").iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3
    parsed = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(e["Message-ID"] for e in parsed) == sorted(m.message_id for m in batch)
    assert {e["To"].addresses[0].addr_spec for e in parsed} == {m.recipient for m in batch}


def test_the_outbox_overwrites_a_resend(tmp_path: Path) -> None:
    """Sending the same message twice (a resend after a crash) leaves one file."""
    notifier = OutboxEmailNotifier(tmp_path / "outbox", SENDER, ORGANISATION)
    asyncio.run(notifier.send([outbound(1)]))
    asyncio.run(notifier.send([outbound(1)]))
    files = list((tmp_path / "outbox" / "email").iterdir())
    assert len(files) == 1
    assert files[0].suffix == ".eml"


def test_the_outbox_handles_an_internationalised_address(tmp_path: Path) -> None:
    """Sandbox mode: one address with a non-ASCII local part must not fail the whole batch."""
    notifier = OutboxEmailNotifier(tmp_path / "outbox", SENDER, ORGANISATION)
    batch = [outbound(1), outbound(2, recipient="josé@example.net"), outbound(3)]
    results = by_id(asyncio.run(notifier.send(batch)))
    assert sorted(results) == [1, 2, 3]
    assert results[1].status is results[3].status is DeliveryStatus.SENT
