"""``POST /ui/incidents/{key}/export/{format}``: the exports of ``breach export``, downloaded
from the incident page by anyone who may read it (a form with the session's token: a
download writes an export and an event, so it is never a GET).

Each download is a new export made by :func:`flows.export.export_incident`: written to the
exports folder and recorded on the timeline (``export.written``) under the viewer's key
name, exactly as the command records its user. The file goes out as an attachment with the
pages' headers: ``nosniff`` and the script-less policy keep a browser from treating it as a
page of ours, and ``no-store`` keeps it out of every cache, as the incident's data is.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from breachflow.api.auth import Caller
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import action
from breachflow.flows.export.write import ExportFormat, export_incident

router = APIRouter()

MEDIA_TYPES = {
    ExportFormat.PDF: "application/pdf",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.BUNDLE: "application/zip",
}


@router.post("/incidents/{key}/export/{fmt}")
async def download(request: Request, key: str, fmt: str) -> Response:
    """A POST with the form token: each download is a new export on the timeline."""

    def build(who: Caller, form: dict[str, list[str]]) -> Response:
        if fmt not in MEDIA_TYPES:
            formats = ", ".join(MEDIA_TYPES)
            message = f"There is no such export: the formats are {formats}."
            return render("error", 404, viewer=who, message=message)
        chosen = ExportFormat(fmt)
        result = export_incident(key, chosen, out=None, actor=who.actor)
        return FileResponse(
            result.path, media_type=MEDIA_TYPES[chosen], filename=result.path.name, headers=HEADERS
        )

    return await action(request, build)
