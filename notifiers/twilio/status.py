"""Twilio's status callbacks, verified and reduced to the ledger's vocabulary.

Anyone can POST to a public webhook, so a callback counts only when its
``X-Twilio-Signature`` matches the URL and parameters under our auth token. Only final
outcomes are returned; the progress reports in between (queued, sent, ringing...) record
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from breachflow.models.delivery import ProviderEvent, ProviderEventStatus
from breachflow.models.errors import BreachError

#: Message status -> outcome; statuses not listed are progress and record nothing.
MESSAGE_OUTCOMES: dict[str, ProviderEventStatus] = {
    "delivered": ProviderEventStatus.DELIVERED,
    "read": ProviderEventStatus.DELIVERED,  # WhatsApp: read implies delivered
    "undelivered": ProviderEventStatus.FAILED_PERMANENT,
    "failed": ProviderEventStatus.FAILED_PERMANENT,
}

#: Call status -> (outcome, detail); statuses not listed are progress.
CALL_OUTCOMES: dict[str, tuple[ProviderEventStatus, str | None]] = {
    "completed": (ProviderEventStatus.DELIVERED, None),
    "busy": (ProviderEventStatus.FAILED_TEMPORARY, "call busy"),
    "no-answer": (ProviderEventStatus.FAILED_TEMPORARY, "call not answered"),
    "failed": (ProviderEventStatus.FAILED_PERMANENT, "call failed"),
    "canceled": (ProviderEventStatus.FAILED_PERMANENT, "call canceled"),
}


class InvalidSignature(BreachError):
    """The request does not carry Twilio's signature for this URL and these parameters."""


def twilio_event(
    url: str, params: Mapping[str, str], signature: str | None, auth_token: str
) -> ProviderEvent | None:
    """Verify a status callback and normalize it; None when it records nothing.

    ``url`` is the full URL Twilio requested (scheme, host, path and query, as configured
    in the StatusCallback), ``params`` the form fields of the POST body.
    """
    if not signature:
        raise InvalidSignature("the Twilio status callback carries no X-Twilio-Signature")
    if not RequestValidator(auth_token).validate(url, params, signature):
        raise InvalidSignature("the Twilio status callback's signature does not match")
    if params.get("MessageSid") and params.get("MessageStatus"):
        return _message_event(params)
    if params.get("CallSid") and params.get("CallStatus"):
        return _call_event(params)
    return None


def _message_event(params: Mapping[str, str]) -> ProviderEvent | None:
    outcome = MESSAGE_OUTCOMES.get(params["MessageStatus"])
    if outcome is None:
        return None
    code = params.get("ErrorCode")
    detail = None
    if outcome is not ProviderEventStatus.DELIVERED:
        status = params["MessageStatus"]
        detail = f"twilio error {code}" if code and code.isdigit() else f"message {status}"
    return ProviderEvent(provider_message_id=params["MessageSid"], status=outcome, detail=detail)


def _call_event(params: Mapping[str, str]) -> ProviderEvent | None:
    if params["CallStatus"] not in CALL_OUTCOMES:
        return None
    outcome, detail = CALL_OUTCOMES[params["CallStatus"]]
    sip = params.get("SipResponseCode")
    if detail and sip and outcome is ProviderEventStatus.FAILED_PERMANENT:
        detail = f"{detail} (SIP {sip})"
    return ProviderEvent(provider_message_id=params["CallSid"], status=outcome, detail=detail)
