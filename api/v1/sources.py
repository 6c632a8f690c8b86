"""``/api/v1/alert-sources``: the signed-alert sources and their secrets, for admins.

The same as ``breach alerts add-source | list | rotate | revoke``: a secret is shown once,
when it is made; each rotation and revocation goes on the timelines of the open incidents
the source opened (``flows/intake/sources.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from breachflow.api.auth import Caller, allow
from breachflow.flows.intake import sources
from breachflow.models.apikey import Role

router = APIRouter(prefix="/api/v1/alert-sources", tags=["alert sources"])
Admin = Annotated[Caller, allow(frozenset({Role.ADMIN}))]


class NewSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_hours: float = Field(default=24, ge=0, le=720)


@router.get("")
async def list_sources(who: Admin) -> dict[str, list[sources.SourceView]]:
    return {"items": await run_in_threadpool(sources.list_sources)}


@router.post("", status_code=201)
async def add_source(body: NewSource, who: Admin) -> dict[str, Any]:
    """A new source; its secret is in this answer and nowhere else."""
    secret = await run_in_threadpool(sources.add_source, body.name, who.actor)
    return {"name": body.name.strip(), "secret": secret}


@router.post("/{name}/rotate")
async def rotate(name: str, body: Rotation, who: Admin) -> dict[str, Any]:
    """A new secret; the old one signs for ``grace_hours`` more."""
    grace = timedelta(hours=body.grace_hours)
    secret = await run_in_threadpool(sources.rotate_source, name, who.actor, grace)
    return {"name": name, "secret": secret, "grace_hours": body.grace_hours}


@router.post("/{name}/revoke")
async def revoke(name: str, who: Admin) -> dict[str, str]:
    await run_in_threadpool(sources.revoke_source, name, who.actor)
    return {"name": name, "status": "revoked"}
