"""SMS through Twilio's Messages API, with the ``twilio`` SDK.

The whole notice is sent when it fits the segment budget; otherwise the short text, which
links to the whole notice, so a long (e.g. Chinese, UCS-2) notice never costs a dozen
segments per person. Outcomes are normalized in :mod:`notifiers.twilio.client`.
"""

from __future__ import annotations

from functools import partial

from twilio.rest import Client

from breachflow.models.delivery import DeliveryResult, OutboundMessage
from breachflow.notifiers.base import Pacer
from breachflow.notifiers.segments import fit
from breachflow.notifiers.twilio.client import TwilioSender


class TwilioSmsNotifier:
    name = "twilio-sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback: str | None = None,
        segment_budget: int = 3,
        base_url: str | None = None,
        concurrency: int = 4,
        timeout: float = 30.0,
        pacer: Pacer | None = None,
    ) -> None:
        if (messaging_service_sid is None) == (from_number is None):
            raise ValueError("give exactly one of messaging_service_sid and from_number")
        self.sender_fields = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid is not None
            else {"from_": from_number}
        )
        if status_callback is not None:
            self.sender_fields["status_callback"] = status_callback
        self.segment_budget = segment_budget
        self._sender = TwilioSender(
            account_sid=account_sid,
            auth_token=auth_token,
            base_url=base_url,
            concurrency=concurrency,
            timeout=timeout,
            pacer=pacer,
        )

    def body(self, msg: OutboundMessage) -> str:
        """The whole notice if affordable, else the short text pointing to it."""
        return fit(msg.text, msg.short_text or msg.text, self.segment_budget)

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        return await self._sender.send([(msg, partial(self._create, msg)) for msg in batch])

    def _create(self, msg: OutboundMessage, client: Client) -> str:
        message = client.messages.create(
            to=msg.recipient, body=self.body(msg), **self.sender_fields
        )
        return str(message.sid)
