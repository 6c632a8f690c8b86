"""Email over SMTP with aiosmtplib: a small pool of connections working one batch.

Outcomes are normalized per recipient: a 4xx reply, a dropped connection or a timeout is
``failed_temporary`` (the dispatcher retries later); a 5xx reply is ``failed_permanent``.
Server replies often quote the recipient's address; it is replaced before the reply is
kept as the failure's detail, since details reach logs and the ledger.
"""

from __future__ import annotations

import asyncio
import re
import ssl

import aiosmtplib

from models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from models.settings import SmtpTls
from notifiers.email_message import build_email

TRANSIENT_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


def _scrub(text: str, recipient: str) -> str:
    return re.sub(re.escape(recipient), "<recipient>", text, flags=re.IGNORECASE)[:480]


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
        username: str | None = None,
        password: str | None = None,
        tls: SmtpTls = SmtpTls.NONE,
        timeout: float = 30.0,
        pool_size: int = 4,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sender = sender
        self.organisation = organisation
        self.pool_size = pool_size
        self._connection_options = {
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
                if smtp is None or not smtp.is_connected:
                    try:
                        smtp = aiosmtplib.SMTP(**self._connection_options)
                        await smtp.connect()
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        # The server cannot be reached: everything still queued waits too.
                        smtp = None
                        detail = f"cannot connect to the SMTP server: {exc}"
                        results.append(self._failed(msg, DeliveryStatus.FAILED_TEMPORARY, detail))
                        while not pending.empty():
                            other = pending.get_nowait()
                            results.append(
                                self._failed(other, DeliveryStatus.FAILED_TEMPORARY, detail)
                            )
                        return
                results.append(await self._send_one(smtp, msg))
        finally:
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def _send_one(self, smtp: aiosmtplib.SMTP, msg: OutboundMessage) -> DeliveryResult:
        email = build_email(msg, self.sender, self.organisation)
        try:
            await smtp.send_message(email, sender=self.sender, recipients=[msg.recipient])
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            return self._failed(msg, _classify(refused.code), f"{refused.code} {refused.message}")
        except aiosmtplib.SMTPResponseException as exc:
            return self._failed(msg, _classify(exc.code), f"{exc.code} {exc.message}")
        except TRANSIENT_ERRORS as exc:
            smtp.close()
            return self._failed(msg, DeliveryStatus.FAILED_TEMPORARY, f"connection lost: {exc}")
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=DeliveryStatus.SENT,
            provider_message_id=msg.message_id,
        )

    @staticmethod
    def _failed(msg: OutboundMessage, status: DeliveryStatus, detail: str) -> DeliveryResult:
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=status,
            detail=_scrub(detail, msg.recipient),
        )
