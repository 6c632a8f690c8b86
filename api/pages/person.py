"""``/ui/incidents/{key}/people/{subject_id}``: one affected person's record, the only page
with contact details.

Asked for by name, for the roles in :data:`PERSONAL_DATA`; every view of it is an event on
the incident's timeline with the viewer's key name.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.api.auth import Caller
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import page, to_login, viewer
from breachflow.api.pages.times import when
from breachflow.models import commands
from breachflow.models.apikey import Role
from breachflow.models.errors import NotFound
from breachflow.models.notification import Notification
from breachflow.models.runtime import database, vault
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, record

router = APIRouter()

#: Who may open one person's record with their contact details. Responders answer the
#: people who call in; compliance (the DPO) answers their requests and checks that they
#: were told; admins run the installation. On-call runs steps and approvals: no need.
PERSONAL_DATA = frozenset({Role.ADMIN, Role.RESPONDER, Role.COMPLIANCE})


@router.get("/incidents/{key}/people")
async def find_person(request: Request, key: str, subject_id: str = "") -> Response:
    """The look-up form's target: to the person's own address (a GET form cannot build it)."""
    if await viewer(request) is None:
        return to_login(request)
    target = f"/ui/incidents/{quote(key, safe='')}"
    if subject_id.strip():
        target += f"/people/{quote(subject_id.strip(), safe='')}"
    return RedirectResponse(target, 303, headers=HEADERS)


@router.get("/incidents/{key}/people/{subject_id:path}")
async def person_page(request: Request, key: str, subject_id: str) -> Response:
    def build(who: Caller) -> HTMLResponse:
        if who.role not in PERSONAL_DATA:
            allowed = ", ".join(sorted(PERSONAL_DATA))
            message = f"A {who.role} key may not see people's contact details (allowed: {allowed})."
            return render("error", 403, viewer=who, message=message)
        keys = vault()
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            subject = session.scalar(
                select(Subject).where(
                    Subject.incident_id == incident.id, Subject.external_id == subject_id
                )
            )
            if subject is None:
                raise NotFound(f"{incident.key} has no affected person {subject_id!r}")
            person = _person(session, subject, keys)
            viewed = record(
                session,
                incident,
                EventKind.CONTACTS_VIEWED,
                who.actor,
                {"subject_id": subject.external_id, "role": str(who.role)},
            )
            context: dict[str, Any] = {
                "incident": {"key": incident.key, "title": incident.title},
                "purged": when(incident.purged_at),
                "event": viewed.seq,
            }
        return render("person", viewer=who, person=person, **context)

    return await page(request, build)


def _person(session: Session, subject: Subject, keys: Any) -> dict[str, Any]:
    """What we hold about one person, decrypted for this page only."""
    contacts = {
        field: keys.decrypt(field, getattr(subject, f"{field}_enc"))
        for field in ("name", "email", "phone", "address")
    }
    rows = session.scalars(
        select(Notification).where(Notification.subject_id == subject.id).order_by(Notification.id)
    ).all()
    return {
        "subject_id": subject.external_id,
        **contacts,
        "push": "registered" if subject.push_enc else None,
        "problems": {
            name: getattr(subject, f"{name}_problem")
            for name in ("email", "phone", "push", "address")
            if getattr(subject, f"{name}_problem")
        },
        "locale": subject.locale,
        "residence": "-".join(p for p in (subject.country, subject.region) if p) or None,
        "inferred": subject.residence_inferred,
        "data_categories": ", ".join(subject.data_categories or []) or "the incident's",
        "notices": [
            {
                "channel": row.channel,
                "version": row.notice_version,
                "state": str(row.state),
                "attempts": row.attempts,
                "queued": when(row.queued_at),
                "sent": when(row.sent_at),
                "delivered": when(row.delivered_at),
                "error": row.last_error,
            }
            for row in rows
        ],
    }
