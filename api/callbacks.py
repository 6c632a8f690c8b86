"""Provider status callbacks: verified, kept, applied to the delivery ledger.

Twilio reports what became of each SMS and call (delivered, undelivered, busy, …) by POSTing
to the ``StatusCallback`` URL we gave it. Each request must carry a valid
``X-Twilio-Signature`` for our auth token and the public URL we registered (not whatever
Host header a proxy passes on); anything else is refused with 403 and changes nothing.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from breachflow.flows.notify.dispatch import retry_policy, usable_chain
from breachflow.models import ledger
from breachflow.models.delivery import ProviderEvent
from breachflow.models.runtime import database, settings
from breachflow.notifiers.twilio.status import InvalidSignature, twilio_event

router = APIRouter(prefix="/callbacks", tags=["callbacks"])
TWILIO_PATH = "/callbacks/twilio"


def twilio_callback_url() -> str:
    """The URL our Twilio adapters register, and so the one Twilio signs."""
    return f"{settings().public_url.rstrip('/')}{TWILIO_PATH}"


@router.post("/twilio", status_code=204)
async def twilio_status(request: Request) -> Response:
    token = settings().twilio_auth_token
    if token is None:
        return Response("Twilio is not configured here", status_code=404)
    # Twilio posts application/x-www-form-urlencoded; parsed here, not with request.form(),
    # which needs python-multipart even for this simple encoding.
    body = (await request.body()).decode("utf-8", errors="replace")
    params = dict(parse_qsl(body, keep_blank_values=True))
    url = twilio_callback_url()
    if request.url.query:
        url = f"{url}?{request.url.query}"
    try:
        event = twilio_event(
            url, params, request.headers.get("X-Twilio-Signature"), token.get_secret_value()
        )
    except InvalidSignature:
        return Response("invalid signature", status_code=403)
    if event is not None:
        await run_in_threadpool(_apply, event)
    return Response(status_code=204)


def _apply(event: ProviderEvent) -> str:
    config = settings()
    with database().unit_of_work() as session:
        return ledger.apply_report(
            session,
            event,
            policy_for=lambda channel: retry_policy(config, channel),
            chain_of=lambda incident: usable_chain(session, incident, config)[0],
        )
