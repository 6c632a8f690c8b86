"""What a person does to an incident directly (declare it, set its notice texts).

Everything else happens to an incident through the flow. Each command writes its change and
its timeline event in the caller's unit of work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from breachflow.models.alert import AlertGroup
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput, NotFound
from breachflow.models.incident import Incident, IncidentState, Severity
from breachflow.models.instants import impossible
from breachflow.models.notice import NoticeText, NoticeVersion
from breachflow.models.notification import Notification
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, advance, record


def get_incident(session: Session, key: str, *, lock: bool = False) -> Incident:
    """The incident by key; ``lock`` holds its row until commit, so that two runs of the
    same incident take each step one after the other (SQLite's writers queue anyway)."""
    query = select(Incident).where(Incident.key == key.strip().upper())
    incident = session.scalar(query.with_for_update() if lock else query)
    if incident is None:
        raise NotFound(f"no incident {key!r}; `breach list` shows the incidents there are")
    return incident


def declare(
    session: Session,
    *,
    title: str,
    description: str,
    severity: Severity,
    detected_at: datetime,
    aware_at: datetime,
    data_categories: list[str],
    actor: str,
    contained_at: datetime | None = None,
    discovered_at: datetime | None = None,
    determined_at: datetime | None = None,
    risk: str | None = None,
    encrypted_key_safe: bool = False,
    improper_purpose: bool = False,
    suspected: bool = False,
    exercise: bool = False,
) -> Incident:
    """A new incident; ``suspected`` (opened by an alert) waits for triage: ``confirm``;
    ``exercise``: a tabletop exercise, marked so from its first event."""
    now = utcnow()
    anchors = {
        "detected-at": detected_at, "aware-at": aware_at, "contained-at": contained_at,
        "discovered-at": discovered_at, "determined-at": determined_at,
    }  # fmt: skip
    for name, value in anchors.items():
        problem = impossible(value, now) if value else None
        if value and problem:
            raise InvalidInput(f"--{name} {value.isoformat()} {problem}")
    if aware_at < detected_at:
        raise InvalidInput("--aware-at is before --detected-at: one cannot know before it happens")
    if not title.strip() or not description.strip():
        raise InvalidInput("an incident needs a title and a description")
    fields = dict(
        title=title.strip(),
        description=description.strip(),
        severity=severity,
        state=IncidentState.SUSPECTED if suspected else IncidentState.DECLARED,
        data_categories=sorted({c.strip().lower() for c in data_categories if c.strip()}),
        detected_at=detected_at,
        aware_at=aware_at,
        contained_at=contained_at,
        discovered_at=discovered_at or detected_at,  # discovery is detection unless told
        determined_at=determined_at,
        risk=risk,
        encrypted_key_safe=encrypted_key_safe,
        improper_purpose=improper_purpose,
        declared_by=actor,
        timeline_length=0,
        exercise=exercise,
    )
    incident = _numbered(session, f"INC-{now.year}-", fields)
    record(
        session,
        incident,
        EventKind.INCIDENT_SUSPECTED if suspected else EventKind.INCIDENT_DECLARED,
        actor,
        {
            "key": incident.key,
            "title": incident.title,
            "severity": str(severity),
            "detected_at": detected_at.isoformat(),
            "aware_at": aware_at.isoformat(),
            "data_categories": incident.data_categories,
            "risk": risk,
            "encrypted_key_safe": encrypted_key_safe,
            "improper_purpose": improper_purpose,
            **({"exercise": True} if exercise else {}),
        },
        occurred_at=detected_at,
    )
    return incident


def _numbered(session: Session, prefix: str, fields: dict[str, object]) -> Incident:
    """Insert the incident under the next free key. Two declarations at once (alerts
    arriving together, two API calls) may count the same number; the unique key refuses
    the second, which takes the next one, inside a savepoint so nothing else is undone."""
    for _ in range(MAX_KEY_ATTEMPTS):
        count = session.scalar(select(func.count()).where(Incident.key.startswith(prefix))) or 0
        incident = Incident(key=f"{prefix}{count + 1:04d}", **fields)
        try:
            with session.begin_nested():
                session.add(incident)
                session.flush()
        except IntegrityError:
            continue
        return incident
    raise InvalidInput(f"could not number a new incident after {MAX_KEY_ATTEMPTS} tries; retry")


MAX_KEY_ATTEMPTS = 50


def confirm(
    session: Session,
    incident: Incident,
    actor: str,
    reason: str,
    aware_at: datetime | None = None,
) -> None:
    """Triage: a suspected incident is a breach. The clocks that run from awareness start
    now, or at ``aware_at`` when someone knew earlier."""
    _triage(session, incident, actor, reason, IncidentState.DECLARED)
    update_incident(session, incident, actor, {"aware_at": aware_at or utcnow()})


def dismiss(session: Session, incident: Incident, actor: str, reason: str) -> None:
    """Triage: a suspected incident is not a breach; it stays on the record."""
    _triage(session, incident, actor, reason, IncidentState.DISMISSED)


def suspected(session: Session) -> list[tuple[Incident, AlertGroup | None]]:
    """The incidents waiting for triage, oldest first, each with its alert group (none for
    one a report from the public opened)."""
    rows = session.execute(
        select(Incident, AlertGroup)
        .join(AlertGroup, AlertGroup.incident_id == Incident.id, isouter=True)
        .where(Incident.state == IncidentState.SUSPECTED)
        .order_by(Incident.id)
    ).all()
    return [(incident, group) for incident, group in rows]


def triage(
    session: Session,
    incident: Incident,
    actor: str,
    decision: str,
    reason: str,
    aware_at: datetime | None = None,
) -> None:
    """``confirm`` or ``dismiss``, as the API and the pages are asked."""
    if decision == "confirm":
        confirm(session, incident, actor, reason, aware_at)
    elif decision == "dismiss":
        dismiss(session, incident, actor, reason)
    else:
        raise InvalidInput(f"a triage decision is confirm or dismiss, not {decision!r}")


def _triage(
    session: Session, incident: Incident, actor: str, reason: str, target: IncidentState
) -> None:
    if not reason.strip():
        raise InvalidInput("give the reason for the triage decision (--reason)")
    if incident.state != IncidentState.SUSPECTED:
        raise InvalidInput(f"{incident.key} is {incident.state}: only a suspected incident")
    record(session, incident, EventKind.INCIDENT_TRIAGED, actor, {"to": target, "reason": reason})
    advance(session, incident, target, actor)


#: What ``breach update`` may change; each change is recorded with its old and new value.
UPDATABLE = (
    "detected_at", "aware_at", "discovered_at", "determined_at", "assessed_at",
    "contained_at", "handling_ended_at", "classified_major_at", "corrective_measure_at",
    "risk", "encrypted_key_safe", "improper_purpose", "material", "channel_chain",
)  # fmt: skip


def update_incident(
    session: Session, incident: Incident, actor: str, changes: dict[str, object]
) -> dict[str, dict[str, object]]:
    """Change the facts the assessment depends on; returns {field: {from, to}}."""
    if incident.state == IncidentState.CLOSED:
        raise InvalidInput(f"{incident.key} is closed; its facts are part of the record now")
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise InvalidInput(f"cannot update {', '.join(sorted(unknown))}")
    now = utcnow()
    changed: dict[str, dict[str, object]] = {}
    for name, value in changes.items():
        problem = impossible(value, now) if isinstance(value, datetime) else None
        if isinstance(value, datetime) and problem:
            raise InvalidInput(f"--{name.replace('_', '-')} {value.isoformat()} {problem}")
        old = getattr(incident, name)
        if old != value:
            changed[name] = {"from": _plain(old), "to": _plain(value)}
            setattr(incident, name, value)
    if incident.aware_at < incident.detected_at:
        raise InvalidInput("aware-at would be before detected-at")
    if changed:
        record(session, incident, EventKind.INCIDENT_UPDATED, actor, changed)
    return changed


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def set_notice(
    session: Session, incident: Incident, texts: dict[str, NoticeText], actor: str
) -> NoticeVersion:
    """Store a new notice version; refused once notices of the current one went out."""
    current = latest_notice(session, incident)
    if current is not None and session.scalar(
        select(func.count()).where(
            Notification.incident_id == incident.id,
            Notification.notice_version == current.version,
        )
    ):
        raise InvalidInput(
            f"notices of version {current.version} are already queued for {incident.key}; "
            "a corrected notice after sending is not supported yet"
        )
    digest = NoticeVersion.digest(texts)
    if current is not None and current.sha256 == digest:
        return current
    version = NoticeVersion(
        incident_id=incident.id,
        version=(current.version + 1) if current else 1,
        texts={loc: t.model_dump(exclude_none=True) for loc, t in texts.items()},
        sha256=digest,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    record(
        session,
        incident,
        EventKind.NOTICE_SET,
        actor,
        {"version": version.version, "locales": sorted(texts), "sha256": digest},
    )
    return version


def latest_notice(session: Session, incident: Incident) -> NoticeVersion | None:
    return session.scalar(
        select(NoticeVersion)
        .where(NoticeVersion.incident_id == incident.id)
        .order_by(NoticeVersion.version.desc())
        .limit(1)
    )


def count_subjects(session: Session, incident: Incident) -> int:
    return session.scalar(select(func.count()).where(Subject.incident_id == incident.id)) or 0
