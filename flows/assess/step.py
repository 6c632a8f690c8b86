"""Step 1, assess: who is affected, who can be reached, and who must be told what by when.

The obligations come from the rules engine (``flows.assessment``); this step adds what the
notification needs: notice texts for every locale, and how many people email can reach.
"""

from __future__ import annotations

from collections import Counter

from prefect import task
from sqlalchemy import select

from breachflow.flows.assess.assessment import assess as assess_obligations
from breachflow.flows.steps import STEP_TASK, step_finished, step_started
from breachflow.models.commands import get_incident, latest_notice
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import IncidentState
from breachflow.models.runtime import database, settings
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, advance, record
from breachflow.rendering.notices import choose_locale, notice_locales


@task(name="assess", **STEP_TASK)
def assess(incident_key: str, actor: str) -> None:
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.ASSESSED):
            return
        step_started(session, incident, "assess", actor)
        notice = latest_notice(session, incident)
        if notice is None:
            raise InvalidInput(
                f"{incident.key} has no notice texts yet; set them with "
                f"`breach notice set {incident.key} notice.yaml` (see examples/notice.yaml)"
            )
        people = session.execute(
            select(Subject.locale, Subject.email_index.is_not(None)).where(
                Subject.incident_id == incident.id
            )
        ).all()
        if not people:
            raise InvalidInput(
                f"{incident.key} has no affected people; import them with "
                f"`breach subjects import {incident.key} affected.csv`"
            )
        writable = notice_locales() & set(notice.texts)
        if config.default_locale not in writable:
            raise InvalidInput(
                f"the default locale {config.default_locale} needs both a template and notice "
                f"texts; notice version {notice.version} has {', '.join(sorted(notice.texts))}"
            )
        locales = Counter(choose_locale(loc, writable, config.default_locale) for loc, _ in people)
        fallbacks = Counter(
            loc for loc, _ in people if choose_locale(loc, writable, config.default_locale) != loc
        )
        assessment = assess_obligations(session, incident, actor, config)
        reachable = sum(1 for _, has_email in people if has_email)
        record(
            session,
            incident,
            EventKind.POPULATION_ASSESSED,
            actor,
            {
                "affected_people": len(people),
                "reachable_by_email": reachable,
                "without_usable_email": len(people) - reachable,
                "notice_locales": dict(locales),
                "locales_without_texts": dict(fallbacks),
                "notice_version": notice.version,
                "assessment": assessment.number,
            },
        )
        advance(session, incident, IncidentState.ASSESSED, actor)
        step_finished(session, incident, "assess", actor)
