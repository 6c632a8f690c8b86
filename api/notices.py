"""The page an SMS or push notice links to: the whole notice, in the person's language.

Public on purpose (the people reading it are not our users), so it shows only the notice
text an incident sends to everyone, never anything about one person, and only once the
incident has started notifying.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from breachflow.flows.announce.publication import public_notice
from breachflow.models.commands import get_incident, latest_notice
from breachflow.models.errors import NotFound
from breachflow.models.incident import IncidentState
from breachflow.models.runtime import database, settings
from breachflow.rendering.notices import choose_locale, notice_locales, notice_page

router = APIRouter(tags=["notices"])


@router.get("/notices/{incident_key}/{locale}", response_class=HTMLResponse)
async def notice(incident_key: str, locale: str) -> HTMLResponse:
    html = await run_in_threadpool(_page, incident_key, locale)
    if html is None:
        return HTMLResponse("<h1>No such notice</h1>", status_code=404)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; font-src data:"
            )
        },
    )


def _page(incident_key: str, locale: str) -> str | None:
    config = settings()
    with database().unit_of_work() as session:
        try:
            incident = get_incident(session, incident_key)
        except NotFound:
            return None
        notice = latest_notice(session, incident)
        if notice is None or not incident.has_reached(IncidentState.NOTIFYING):
            return None
        texts = notice.parsed()
        chosen = choose_locale(locale, notice_locales("email") & set(texts), config.default_locale)
        if chosen not in texts:
            return None
        # The whole notice an SMS or push notice links to, worded as the SMS is.
        content = public_notice(incident, texts[chosen].for_channel("sms"), chosen, config)
    return notice_page(content)
