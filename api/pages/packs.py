"""``/ui/incidents/{key}/reports/{number}.{html|pdf|json}``: a regulator report's pack as
it was written, for anyone who may read the incident's pages.

The file is the one the filing wrote (``.breach/reports/``), checked against the SHA-256
recorded then: a pack changed on disk since is refused with a page saying so, never shown as
what was filed. The pack's HTML styles itself inline and loads nothing, so it is served
with a policy allowing inline styles and data: fonts and nothing else (no script).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from breachflow.api.auth import Caller
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import page
from breachflow.models import commands
from breachflow.models.regulator_report import RegulatorReport
from breachflow.models.runtime import database, settings

router = APIRouter()

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "json": "application/json",
}
PACK_POLICY = "default-src 'none'; style-src 'unsafe-inline'; font-src data:; img-src data:"


@router.get("/incidents/{key}/reports/{report_id}.{suffix}")
async def pack(request: Request, key: str, report_id: str, suffix: str) -> Response:
    def build(who: Caller) -> Response:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            report = session.get(RegulatorReport, int(report_id)) if report_id.isdigit() else None
            if report is None or report.incident_id != incident.id or suffix not in MEDIA_TYPES:
                return render("error", 404, viewer=who, message="There is no such report file.")
            stored, recorded = report.files.get(suffix), report.files.get("sha256", {})
        data = _read(stored)
        if data is None:
            return render("error", 404, viewer=who, message="This report's file is not there.")
        if recorded.get(suffix) and hashlib.sha256(data).hexdigest() != recorded[suffix]:
            message = (
                "This report's file has changed since it was written: it is not shown as what"
                " was filed. `breach audit verify` and the export bundle say more."
            )
            return render("error", 409, viewer=who, message=message)
        headers = {**HEADERS, "Content-Security-Policy": PACK_POLICY}
        return Response(data, media_type=MEDIA_TYPES[suffix], headers=headers)

    return await page(request, build)


def _read(stored: str | None) -> bytes | None:
    """The pack file, in the configured reports folder (the recorded path may be relative
    to where the run was started)."""
    if not stored:
        return None
    for path in (settings().reports / Path(stored).name, Path(stored)):
        try:
            return path.read_bytes()
        except OSError:
            continue
    return None
