"""One affected person's record, the only page with contact details.

Asked for by name (``POST /ui/incidents/{key}/people``, the look-up form, with the form
token), for the roles in :data:`PERSONAL_DATA`; every view of it is an event on the
incident's timeline with the viewer's key name. A link,
``/ui/incidents/{key}/people/{subject_id}``, shows only the button that opens it: a GET
changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.api.auth import Caller
from breachflow.api.forms import first
from breachflow.api.pages.render import render
from breachflow.api.pages.session import action, page
from breachflow.api.pages.times import when
from breachflow.models import commands
from breachflow.models.apikey import Role
from breachflow.models.errors import InvalidInput, NotFound
from breachflow.models.notification import Notification
from breachflow.models.runtime import database, vault
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, record

router = APIRouter()

#: Who may open one person's record with their contact details. Responders answer the
#: people who call in; compliance (the DPO) answers their requests and checks that they
#: were told; admins run the installation. On-call runs steps and approvals: no need.
PERSONAL_DATA = frozenset({Role.ADMIN, Role.RESPONDER, Role.COMPLIANCE})


@router.get("/incidents/{key}/people/{subject_id:path}")
async def person_link(request: Request, key: str, subject_id: str) -> Response:
    """A link to a person's record (bookmarked, shared): opening it is recorded on the
    timeline, so a GET only offers the button that opens it (a POST with the form token)."""

    def build(who: Caller) -> HTMLResponse:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            title = {"key": incident.key, "title": incident.title}
        return render("person_open", viewer=who, incident=title, subject_id=subject_id)

    return await page(request, build)


@router.post("/incidents/{key}/people")
async def person_page(request: Request, key: str) -> Response:
    """One person's record: the look-up form's target (``subject_id``, ``csrf``)."""

    def build(who: Caller, form: dict[str, list[str]]) -> HTMLResponse:
        subject_id = first(form, "subject_id", 200).strip()
        if not subject_id:
            raise InvalidInput("give the person's subject id, as imported")
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

    return await action(request, build)


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
