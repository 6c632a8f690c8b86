"""What every step task shares: retries for transient failures only, and step bookkeeping."""

from __future__ import annotations

from typing import Any

from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from breachflow.models.incident import Incident
from breachflow.models.timeline import EventKind, record

TRANSIENT = (OperationalError, TimeoutError, ConnectionError)


def transient_only(task: Task[..., Any], task_run: object, state: State[Any]) -> bool:
    """Retry a lost database connection or a timeout; never a mistake that would recur."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except DBAPIError as exc:
        return bool(exc.connection_invalidated)
    except Exception:
        return False
    return False


STEP_TASK: dict[str, Any] = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": transient_only,
}


def step_started(
    session: Session, incident: Incident, step: str, actor: str, **details: Any
) -> None:
    record(session, incident, EventKind.STEP_STARTED, actor, {"step": step, **details})


def step_finished(
    session: Session, incident: Incident, step: str, actor: str, **details: Any
) -> None:
    record(session, incident, EventKind.STEP_FINISHED, actor, {"step": step, **details})
