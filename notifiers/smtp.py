"""Email over SMTP with aiosmtplib: a small pool of connections working one batch.

Outcomes are normalized per recipient: a 4xx reply or a connection dropped mid-message is
``failed_temporary`` (the dispatcher retries later); a 5xx reply to the recipient or the
message is ``failed_permanent``. When the server cannot be used at all (unreachable, our
credentials or sender refused) the messages not yet tried are ``deferred``: that says
nothing about the people, and they are not charged an attempt.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TypedDict

import aiosmtplib

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.settings import SmtpTls
from breachflow.notifiers.email_message import UnbuildableMessage, build_email, scrub

CONNECTION_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


class _ConnectionOptions(TypedDict):
    """The arguments of each pool connection's ``aiosmtplib.SMTP``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool
    timeout: float
    tls_context: ssl.SSLContext | None


class _ServerUnusable(Exception):
    """Raised inside a worker when the server refuses us rather than a recipient."""


def _classify(code: int) -> DeliveryStatus:
    return DeliveryStatus.FAILED_PERMANENT if 500 <= code < 600 else DeliveryStatus.FAILED_TEMPORARY


class SmtpEmailNotifier:
    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        organisation: str,
        reply_to: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: SmtpTls = SmtpTls.NONE,
        timeout: float = 30.0,
        pool_size: int = 4,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sender = sender
        self.organisation = organisation
        self.reply_to = reply_to
        self.pool_size = pool_size
        self.server = f"{host}:{port}"
        self._connection_options: _ConnectionOptions = {
            "hostname": host,
            "port": port,
            "username": username,
            "password": password,
            "use_tls": tls is SmtpTls.TLS,
            "start_tls": tls is SmtpTls.STARTTLS,
            "timeout": timeout,
            "tls_context": tls_context,
        }

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        pending: asyncio.Queue[OutboundMessage] = asyncio.Queue()
        for msg in batch:
            pending.put_nowait(msg)
        results: list[DeliveryResult] = []
        workers = min(self.pool_size, len(batch))
        await asyncio.gather(*(self._worker(pending, results) for _ in range(workers)))
        return results

    async def _worker(
        self, pending: asyncio.Queue[OutboundMessage], results: list[DeliveryResult]
    ) -> None:
        """One connection: send until the queue is empty, reconnecting after a drop."""
        smtp: aiosmtplib.SMTP | None = None
        try:
            while not pending.empty():
                msg = pending.get_nowait()
                try:
                    email = build_email(msg, self.sender, self.organisation, self.reply_to)
                except UnbuildableMessage as exc:
                    results.append(_result(msg, DeliveryStatus.FAILED_PERMANENT, str(exc)))
                    continue
                try:
                    if smtp is None or not smtp.is_connected:
                        smtp = await self._connect()
                    results.append(await self._send_one(smtp, msg, email))
                except _ServerUnusable as exc:
                    # Every message still queued would meet the same refusal: defer them all.
                    results.append(_result(msg, DeliveryStatus.DEFERRED, str(exc)))
                    while not pending.empty():
                        other = pending.get_nowait()
                        results.append(_result(other, DeliveryStatus.DEFERRED, str(exc)))
                    return
        finally:
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(**self._connection_options)
        try:
            await smtp.connect()  # includes STARTTLS and login when configured
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise _ServerUnusable(f"SMTP server {self.server} unavailable: {exc}") from None
        return smtp

    async def _send_one(
        self, smtp: aiosmtplib.SMTP, msg: OutboundMessage, email: bytes
    ) -> DeliveryResult:
        try:
            await smtp.sendmail(self.sender, [msg.recipient], email)
        except aiosmtplib.SMTPSenderRefused as exc:
            raise _ServerUnusable(
                f"SMTP server {self.server} refused our sender: {exc.code} {exc.message}"
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return _result(msg, _classify(refused.code), f"{refused.code} {refused.message}")
        except aiosmtplib.SMTPResponseException as exc:
            return _result(msg, _classify(exc.code), f"{exc.code} {exc.message}")
        except aiosmtplib.SMTPNotSupported as exc:
            return _result(msg, DeliveryStatus.FAILED_PERMANENT, f"not supported: {exc}")
        except CONNECTION_LOST as exc:
            smtp.close()
            return _result(msg, DeliveryStatus.FAILED_TEMPORARY, f"connection lost: {exc}")
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=DeliveryStatus.SENT,
            provider_message_id=msg.message_id,
        )


def _result(msg: OutboundMessage, status: DeliveryStatus, detail: str) -> DeliveryResult:
    return DeliveryResult(
        notification_id=msg.notification_id, status=status, detail=scrub(detail, msg.recipient)
    )
