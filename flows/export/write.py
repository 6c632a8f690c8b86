"""Exports of an incident for compliance: a PDF report, the timeline as CSV or JSON, and a
bundle that can be checked offline.

No export holds a person's contact details: the ledger is summarised as counts per channel
and state, and the timeline never held any. The **bundle** is a zip of the JSON export, the
incident's regulator report packs and its published announcement pages, with a manifest of
every file's SHA-256 and the timeline's head hash, which :mod:`flows.export.verify` checks
with nothing but the zip.

The CSV is for people with spreadsheets: cells that a spreadsheet would run as a formula are
prefixed with a quote, so it cannot be verified; the JSON and the bundle can.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.flows.export.verify import BUNDLE_FORMAT, CHECKPOINTS, MANIFEST, TIMELINE
from breachflow.flows.report.filing import summary
from breachflow.models import ledger
from breachflow.models.anchor import Checkpoint, Witness, reachable
from breachflow.models.announcement import announcements
from breachflow.models.base import iso, utcnow
from breachflow.models.commands import count_subjects, get_incident
from breachflow.models.errors import InvalidInput
from breachflow.models.files import write_atomically
from breachflow.models.incident import Incident
from breachflow.models.regulator_report import reports
from breachflow.models.runbook import StepDone
from breachflow.models.runtime import database, settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import ChainCheck, EventKind, check_chain, events_of, record
from breachflow.rendering.environment import environment


class ExportFormat(StrEnum):
    PDF = "pdf"
    CSV = "csv"
    JSON = "json"
    BUNDLE = "bundle"


SUFFIX = {
    ExportFormat.PDF: "pdf",
    ExportFormat.CSV: "csv",
    ExportFormat.JSON: "json",
    ExportFormat.BUNDLE: "zip",
}
EXPORT_FORMAT = "breachflow.incident-export/1"
CSV_COLUMNS = [
    "incident",
    "title",
    "seq",
    "occurred_at",
    "recorded_at",
    "actor",
    "kind",
    "details",
    "prev_hash",
    "hash",
]


# --- What every export shows --------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """One consistent reading of an incident for an export; contact details are not in it.

    ``events`` stop at the length the incident row recorded when it was read, so an event
    appended meanwhile cannot make a sound chain look broken.
    """

    key: str
    exported_at: datetime
    exported_by: str
    incident: dict[str, Any]
    ledger: dict[str, Any]
    reports: list[dict[str, Any]]
    announcements: list[dict[str, Any]]
    events: list[dict[str, Any]]
    chain: ChainCheck
    length: int
    head: str | None
    #: ``(name in the bundle, file on disk, SHA-256 recorded when it was written)``
    files: list[tuple[str, Path, str | None]] = field(default_factory=list)
    #: The timeline's signed checkpoints up to ``length`` (models/anchor.py), one per line.
    checkpoints: list[str] = field(default_factory=list)


def snapshot(session: Session, incident: Incident, config: Settings, actor: str) -> Snapshot:
    """Read everything the exports show, in the caller's transaction."""
    length, head = incident.timeline_length, incident.timeline_head
    stored = list(events_of(session, incident, up_to=length))
    filed = reports(session, incident.id)
    return Snapshot(
        key=incident.key,
        exported_at=utcnow(),
        exported_by=actor,
        incident=_incident_facts(session, incident),
        ledger=_ledger_summary(session, incident),
        reports=[_report_summary(r) for r in filed],
        announcements=_announcement_summary(session, incident),
        events=[e.exported() for e in stored],
        chain=check_chain(stored, length, head),
        length=length,
        head=head,
        files=(
            _report_files(filed, config)
            + _announcement_files(incident.key, config)
            + _evidence_files(session, incident, config)
        ),
        checkpoints=[
            c.line()
            for c in sorted(reachable(session, incident, _witness(config)), key=_by_event)
            if c.events <= length
        ],
    )


def _witness(config: Settings) -> Witness | None:
    configured = config.witness_dir is not None or config.checkpoint_key is not None
    return Witness(config.witness) if configured else None


def _by_event(checkpoint: Checkpoint) -> tuple[int, str]:
    return checkpoint.events, checkpoint.signed_at


def _incident_facts(session: Session, incident: Incident) -> dict[str, Any]:
    times = (
        "detected_at", "aware_at", "discovered_at", "contained_at", "determined_at",
        "assessed_at", "handling_ended_at", "classified_major_at", "corrective_measure_at",
        "notice_deadline", "policy_deadline",
        "closed_at", "purge_after", "purged_at",
    )  # fmt: skip
    return {
        "key": incident.key,
        "title": incident.title,
        "description": incident.description,
        "severity": str(incident.severity),
        "state": str(incident.state),
        "risk": incident.risk,
        "data_categories": list(incident.data_categories),
        "declared_by": incident.declared_by,
        "affected_people": count_subjects(session, incident),
        **{name: iso(getattr(incident, name)) for name in times},
    }


def _ledger_summary(session: Session, incident: Incident) -> dict[str, Any]:
    """Counts only: people by outcome, ledger rows by channel and state."""
    people = ledger.people(session, incident)
    return {
        "people": {
            "affected": people.affected,
            "reached": people.reached,
            "unreachable": people.unreachable,
            "pending": people.pending,
        },
        "by_channel": ledger.channel_counts(session, incident),
    }


def _report_summary(report: Any) -> dict[str, Any]:
    """What the timeline says of a report, with its filing and the file names (not paths)."""
    return {
        **summary(report),
        "submitted_at": iso(report.submitted_at),
        "submitted_by": report.submitted_by,
        "acknowledged_at": iso(report.acknowledged_at),
        "files": sorted(Path(p).name for k, p in report.files.items() if k != "sha256"),
    }


def _announcement_summary(session: Session, incident: Incident) -> list[dict[str, Any]]:
    """Each published version: why, when, until when, and where it went."""
    return [
        {
            "version": a.version,
            "published_at": iso(a.published_at),
            "ends_at": iso(a.ends_at),
            "locales": list(a.locales),
            "reason": a.reason,
            "sha256": a.sha256,
            "destinations": {name: d.get("status") for name, d in a.destinations.items()},
        }
        for a in announcements(session, incident.id)
    ]


def _report_files(filed: list[Any], config: Settings) -> list[tuple[str, Path, str | None]]:
    """Each report's HTML, PDF and JSON, looked for in the configured reports folder (the
    recorded path may be relative to where the run was started)."""
    found = []
    for report in filed:
        recorded = report.files.get("sha256", {})
        for suffix, stored in sorted(report.files.items()):
            if suffix == "sha256":
                continue
            name = Path(stored).name
            source = config.reports / name
            if not source.exists() and Path(stored).exists():
                source = Path(stored)
            found.append((f"reports/{name}", source, recorded.get(suffix)))
    return found


def _evidence_files(
    session: Session, incident: Incident, config: Settings
) -> list[tuple[str, Path, str | None]]:
    """The files kept as evidence of runbook steps done, with the hash taken when each was
    kept (a file changed since is bundled as it is, and said so)."""
    found = []
    done = session.scalars(
        select(StepDone)
        .where(StepDone.incident_id == incident.id, StepDone.evidence_file.is_not(None))
        .order_by(StepDone.id)
    )
    for step in done:
        name = Path(step.evidence_file or "").name
        source = config.home / "evidence" / incident.key / name
        if not source.exists() and Path(step.evidence_file or "").exists():
            source = Path(step.evidence_file or "")
        found.append((f"evidence/{name}", source, step.evidence_sha256))
    return found


def _announcement_files(key: str, config: Settings) -> list[tuple[str, Path, str | None]]:
    """The incident's published pages, every version, as the static site holds them."""
    folder = config.site / "announcements" / key
    if not folder.is_dir():
        return []
    return [
        (f"announcements/{path.relative_to(folder).as_posix()}", path, None)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    ]


# --- One function per format ----------------------------------------------------------------


def as_json(snap: Snapshot) -> bytes:
    """The incident, the ledger summary, reports, announcements and the whole timeline, each
    event with the fields its hash covers: anyone can recompute the chain from this file."""
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": iso(snap.exported_at),
        "exported_by": snap.exported_by,
        "incident": snap.incident,
        "ledger": snap.ledger,
        "reports": snap.reports,
        "announcements": snap.announcements,
        "timeline": {
            "length": snap.length,
            "head": snap.head,
            "verified_at_export": snap.chain.ok,
            "events": snap.events,
        },
    }
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode()


def as_csv(snap: Snapshot) -> bytes:
    """One row per event; UTF-8 with a BOM so spreadsheets read Chinese titles right."""
    from breachflow.flows.assess.subjects import (
        neutralize,  # heavy module; only the CSV export needs it
    )

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    title = snap.incident["title"]
    for e in snap.events:
        details = json.dumps(e["payload"], ensure_ascii=False, separators=(",", ":"))
        row = [snap.key, title, str(e["seq"]), e["occurred_at"], e["recorded_at"], e["actor"]]
        row += [e["kind"], details, e["prev_hash"], e["hash"]]
        writer.writerow([neutralize(cell) for cell in row])
    return out.getvalue().encode("utf-8-sig")


def as_pdf(snap: Snapshot, config: Settings) -> bytes:
    """The incident report: facts, ledger summary, reports, announcements, timeline."""
    from breachflow.rendering.pdf import PdfRenderer  # WeasyPrint: loaded only for the PDF

    html = environment().get_template("export/incident.html.j2").render(x=_pdf_view(snap))
    title = f"{snap.key} — {snap.incident['title']}"
    return PdfRenderer().pdf(html, title=title, author=config.organisation_name)


def _pdf_view(snap: Snapshot) -> dict[str, Any]:
    """What the template shows, already formatted: the template only lays it out."""
    events = [
        {
            "seq": e["seq"],
            "happened": "" if e["occurred_at"] == e["recorded_at"] else _shown(e["occurred_at"]),
            "recorded": _shown(e["recorded_at"]),
            "actor": e["actor"],
            "kind": e["kind"],
            "payload": e["payload"],  # whole: the template tells it in words
            "hash": e["hash"][:16],
        }
        for e in snap.events
    ]
    facts = {
        name: _shown(value) if name.endswith(("_at", "_deadline", "_after")) else value
        for name, value in snap.incident.items()
    }
    return {
        "key": snap.key,
        "incident": facts,
        "ledger": snap.ledger,
        "reports": [
            {**r, "deadline": _shown(r["deadline"]), "submitted_at": _shown(r["submitted_at"])}
            for r in snap.reports
        ],
        "announcements": [
            {**a, "published_at": _shown(a["published_at"]), "ends_at": _shown(a["ends_at"])}
            for a in snap.announcements
        ],
        "events": events,
        "length": snap.length,
        "head": snap.head,
        "chain": snap.chain,
        "exported_at": _shown(iso(snap.exported_at)),
        "exported_by": snap.exported_by,
    }


@dataclass(frozen=True)
class Built:
    data: bytes
    warnings: list[str] = field(default_factory=list)


def as_bundle(snap: Snapshot) -> Built:
    """The zip: the JSON export, report packs, announcement pages and the manifest.

    A report file that is gone, or differs from the hash recorded when it was written, is
    still bundled as it is now, and said so in the manifest and the warnings.
    """
    members: dict[str, bytes] = {TIMELINE: as_json(snap)}
    if snap.checkpoints:
        members[CHECKPOINTS] = "".join(line + "\n" for line in snap.checkpoints).encode()
    warnings = []
    for name, source, recorded in snap.files:
        try:
            data = source.read_bytes()
        except OSError as exc:
            warnings.append(f"{name} not bundled: {exc.strerror or exc}")
            continue
        if recorded and hashlib.sha256(data).hexdigest() != recorded:
            warnings.append(f"{name} has changed since it was written (recorded SHA-256 differs)")
        members[name] = data
    manifest = {
        "format": BUNDLE_FORMAT,
        "incident": snap.key,
        "created_at": iso(snap.exported_at),
        "created_by": snap.exported_by,
        "chain": {"events": snap.length, "head": snap.head},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
        "warnings": warnings,
    }
    members[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode()
    stamp = snap.exported_at.timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), data, zipfile.ZIP_DEFLATED)
    return Built(out.getvalue(), warnings)


# --- Writing one and recording it ----------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: ExportFormat
    sha256: str
    events: int
    head: str | None
    chain: ChainCheck
    warnings: list[str]


def default_path(config: Settings, key: str, fmt: ExportFormat, now: datetime) -> Path:
    """``<home>/exports/<INC>/<INC>-<UTC time>.<ext>``; never over an earlier export."""
    folder = config.home / "exports" / key
    stem = f"{key}-{now:%Y%m%dT%H%M%SZ}"
    target, n = folder / f"{stem}.{SUFFIX[fmt]}", 1
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}.{SUFFIX[fmt]}"
    return target


def export_incident(key: str, fmt: ExportFormat, out: Path | None, actor: str) -> ExportResult:
    """Write one export and record it on the incident's timeline (format, file, SHA-256,
    and the head it covers); the file is removed again if that record cannot be made."""
    config = settings()
    with database().unit_of_work() as session:
        snap = snapshot(session, get_incident(session, key), config, actor)
    built = _build(snap, fmt, config)
    target = default_path(config, snap.key, fmt, snap.exported_at)
    if out is not None:  # a folder gets the default name inside it
        target = out / target.name if out.is_dir() else out
    try:
        write_atomically(target, built.data)
    except OSError as exc:
        raise InvalidInput(f"cannot write {target}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(built.data).hexdigest()
    try:
        with database().unit_of_work() as session:
            incident = get_incident(session, snap.key, lock=True)
            record(
                session,
                incident,
                EventKind.EXPORT_WRITTEN,
                actor,
                {
                    "format": str(fmt),
                    "file": str(target),
                    "sha256": digest,
                    "bytes": len(built.data),
                    "events": snap.length,
                    "head": snap.head,
                },
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return ExportResult(target, fmt, digest, snap.length, snap.head, snap.chain, built.warnings)


def _build(snap: Snapshot, fmt: ExportFormat, config: Settings) -> Built:
    builders: dict[ExportFormat, Callable[[], Built]] = {
        ExportFormat.PDF: lambda: Built(as_pdf(snap, config)),
        ExportFormat.CSV: lambda: Built(as_csv(snap)),
        ExportFormat.JSON: lambda: Built(as_json(snap)),
        ExportFormat.BUNDLE: lambda: as_bundle(snap),
    }
    built = builders[fmt]()
    if not snap.chain.ok:
        warning = f"the timeline is BROKEN at event {snap.chain.broken_at}: {snap.chain.reason}"
        built = Built(built.data, [warning, *built.warnings])
    return built


# --- Small helpers --------------------------------------------------------------------------


def _shown(value: str | None) -> str:
    """``2026-11-20 09:30:00 UTC`` from an ISO time; ``—`` for none."""
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
