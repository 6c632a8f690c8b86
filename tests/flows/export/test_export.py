"""Exports for compliance: the PDF report, the CSV that cannot run formulas, and the bundle
that verifies offline, and stops verifying when a single byte of it changes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from pypdf import PdfReader
from sqlalchemy import select
from typer.testing import CliRunner

from breachflow.cli.app import app
from breachflow.flows.announce.decision import operator_decision
from breachflow.flows.announce.publication import publish
from breachflow.flows.approve.runbook import mark_done
from breachflow.flows.assess.assessment import assess
from breachflow.flows.assess.subjects import neutralize
from breachflow.flows.export.verify import MANIFEST, TIMELINE, verify_bundle
from breachflow.flows.export.write import ExportFormat, export_incident
from breachflow.flows.report.filing import due, file_reports
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.db import Database
from breachflow.models.errors import BreachError
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, TimelineEvent, record
from tests.conftest import SQLITE_ONLY
from tests.testkit.factories import declare_test_incident, people, seed_incident

BREACH = str(Path(sys.executable).parent / "breach")
EVIDENCE_STEP = "containment-preserve-evidence"  # a step that asks for a file


def _seed_with_report_and_announcement(db: Database, settings: Settings) -> tuple[str, list]:
    """An incident with a UK GDPR report pack and a published announcement (en, zh-CN)."""
    persons = people(4)
    key = seed_incident(db, settings, persons)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assess(session, incident, "test", settings)
        owed = [o for o in due(session, incident) if o.regime == "uk-gdpr"]
        file_reports(session, incident, owed[:1], "test")
    operator_decision(key, "carol", "Individual notice judged difficult", waive=False)
    publish(key, "carol")
    return key, persons


def _rewrite(bundle: Path, target: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    """Copy ``bundle`` with one member changed, as someone re-zipping it would."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, change(data) if info.filename == name else data)


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]


def _actor_of_event_2(data: bytes) -> int:
    """Where the first letter of event 2's actor is in the exported JSON."""
    start = data.index(b'"seq": 2,')
    return data.index(b'"actor": "', start) + len(b'"actor": "')


def test_a_bundle_re_zipped_with_folder_entries_still_verifies(db, settings, tmp_path):
    """Unpacked and zipped again as ``zip -r`` does, which adds an entry per folder
    (``announcements/``): no false tamper alarm. A folder entry with bytes in it is not
    passed over."""
    key, _ = _seed_with_report_and_announcement(db, settings)
    result = export_incident(key, ExportFormat.BUNDLE, None, "dora")
    rezipped = tmp_path / "rezipped.zip"
    with zipfile.ZipFile(result.path) as src, zipfile.ZipFile(rezipped, "w") as dst:
        members = {i.filename: src.read(i) for i in src.infolist()}
        folders = sorted({str(Path(n).parent) + "/" for n in members if "/" in n})
        for folder in folders:
            dst.writestr(zipfile.ZipInfo(folder), b"")
        for name, data in members.items():
            dst.writestr(name, data, zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(rezipped) as archive:
        assert "announcements/" in archive.namelist()
    check = verify_bundle(rezipped)
    assert check.ok, check.problems

    smuggled = tmp_path / "smuggled.zip"
    with zipfile.ZipFile(rezipped) as src, zipfile.ZipFile(smuggled, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(zipfile.ZipInfo("extra/"), b"hidden")
    check = verify_bundle(smuggled)
    assert not check.ok
    assert "extra/ is in the zip but not in the manifest" in check.problems


def test_a_bundle_verifies_offline_and_one_changed_byte_fails_it(db, settings, tmp_path):
    key, persons = _seed_with_report_and_announcement(db, settings)
    proof = tmp_path / "firewall-change.txt"
    proof.write_text("CHG-1042: support VPN closed at 10:02 UTC\n", encoding="utf-8")
    with db.unit_of_work() as session:  # a runbook step done with its evidence kept
        incident = commands.get_incident(session, key)
        mark_done(session, incident, EVIDENCE_STEP, "erin", evidence=proof)

    result = export_incident(key, ExportFormat.BUNDLE, None, "dora")

    assert result.path.parent == settings.home / "exports" / key
    assert result.path.name.startswith(f"{key}-") and result.path.suffix == ".zip"
    check = verify_bundle(result.path)
    assert check.ok, check.problems
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(MANIFEST))
        texts = {n: archive.read(n) for n in names if not n.endswith(".pdf")}
    reports = {n for n in names if n.startswith("reports/")}
    assert {Path(n).suffix for n in reports} == {".html", ".pdf", ".json"}
    assert {"announcements/en.html", "announcements/zh-CN.html"} <= names
    # The evidence of the runbook step, as it was kept, hashed in the manifest.
    [evidence] = [n for n in names if n.startswith("evidence/")]
    assert texts[evidence] == proof.read_bytes()
    assert set(manifest["files"]) == names - {MANIFEST}
    assert check.files == len(names) - 1
    assert (check.incident, check.events, check.head) == (key, result.events, result.head)
    assert manifest["chain"] == {"events": result.events, "head": result.head}
    timeline = json.loads(texts[TIMELINE])
    assert timeline["ledger"]["people"]["affected"] == 0  # not notified: counts, no people
    assert "report.written" in {e["kind"] for e in timeline["timeline"]["events"]}
    for name, data in texts.items():  # nobody's name or address, in any file
        text = data.decode("utf-8")
        for person in persons:
            assert person.email not in text and person.name not in text, name
    # The export itself is on the timeline, with the file's hash and the head it covered.
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        last = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .order_by(TimelineEvent.seq.desc())
        ).first()
        assert last is not None and last.seq == result.events + 1
        assert (last.kind, last.actor, last.prev_hash) == ("export.written", "dora", result.head)
        assert last.payload["sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest()
        assert last.payload["format"] == "bundle" and last.payload["head"] == result.head

    # One byte of a report changed: it matches neither the manifest nor the timeline's record.
    report_html = next(n for n in reports if n.endswith(".html"))
    changed = tmp_path / "changed-report.zip"
    _rewrite(result.path, changed, report_html, lambda d: _flip_byte(d, len(d) // 2))
    check = verify_bundle(changed)
    assert not check.ok and check.broken_at is None
    assert len(check.problems) == 2, check.problems
    assert check.problems[0].startswith(f"{report_html} does not match the manifest: SHA-256 ")
    assert check.problems[1].startswith(f"{report_html} is not the file the timeline recorded")

    # One byte of the timeline changed (event 2's actor): the manifest and the chain both say so.
    changed = tmp_path / "changed-timeline.zip"
    _rewrite(result.path, changed, TIMELINE, lambda d: _flip_byte(d, _actor_of_event_2(d)))
    check = verify_bundle(changed)
    assert not check.ok and check.broken_at == 2
    assert any(p.startswith(f"{TIMELINE} does not match the manifest") for p in check.problems)
    assert "timeline broken at event 2: content does not match its hash" in check.problems

    # Even with the manifest's hash brought in line, the chain still breaks at event 2.
    with zipfile.ZipFile(changed) as archive:
        forged = archive.read(TIMELINE)

    def refresh(data: bytes) -> bytes:
        listed = json.loads(data)
        listed["files"][TIMELINE] = hashlib.sha256(forged).hexdigest()
        return json.dumps(listed).encode()

    relisted = tmp_path / "relisted.zip"
    _rewrite(changed, relisted, MANIFEST, refresh)
    check = verify_bundle(relisted)
    assert check.problems == ("timeline broken at event 2: content does not match its hash",)

    # A report swapped and the manifest rewritten to match: the chain recorded its hash.
    def swapped_report(data: bytes) -> bytes:
        return data.replace(b"</body>", b"<p>nothing happened</p></body>")

    swapped = tmp_path / "swapped.zip"
    _rewrite(result.path, swapped, report_html, swapped_report)
    with zipfile.ZipFile(swapped) as archive:
        new_hash = hashlib.sha256(archive.read(report_html)).hexdigest()

    def relist_report(data: bytes) -> bytes:
        listed = json.loads(data)
        listed["files"][report_html] = new_hash
        return json.dumps(listed).encode()

    forged_bundle = tmp_path / "forged.zip"
    _rewrite(swapped, forged_bundle, MANIFEST, relist_report)
    check = verify_bundle(forged_bundle)
    assert not check.ok and len(check.problems) == 1, check.problems
    assert check.problems[0].startswith(f"{report_html} is not the file the timeline recorded")

    # The timeline's last event cut and the manifest made to agree: consistent with itself,
    # but not with the head `breach export` printed.
    def cut_last(data: bytes) -> bytes:
        document = json.loads(data)
        document["timeline"]["events"].pop()
        return json.dumps(document).encode()

    cut = tmp_path / "cut.zip"
    _rewrite(result.path, cut, TIMELINE, cut_last)
    with zipfile.ZipFile(cut) as archive:
        shortened = json.loads(archive.read(TIMELINE))["timeline"]["events"]

    def agree(data: bytes) -> bytes:
        listed = json.loads(data)
        with zipfile.ZipFile(cut) as archive:
            listed["files"][TIMELINE] = hashlib.sha256(archive.read(TIMELINE)).hexdigest()
        listed["chain"] = {"events": len(shortened), "head": shortened[-1]["hash"]}
        return json.dumps(listed).encode()

    truncated = tmp_path / "truncated.zip"
    _rewrite(cut, truncated, MANIFEST, agree)
    assert verify_bundle(truncated).ok
    check = verify_bundle(truncated, expected_head=result.head)
    assert not check.ok
    assert check.problems[-1].endswith(f"not at the expected {result.head}")
    assert verify_bundle(result.path, expected_head=result.head).ok

    # A byte flipped in the zip file itself: reported, not raised.
    raw = bytearray(result.path.read_bytes())
    with zipfile.ZipFile(result.path) as archive:
        info = archive.getinfo(report_html)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(raw))
    check = verify_bundle(flipped)
    assert not check.ok
    assert any(p.startswith(report_html) for p in check.problems), check.problems


def _declare(db: Database, title: str, actor: str = "test:seed") -> str:
    """An incident with a few events after its declaration."""
    with db.unit_of_work() as session:
        incident = declare_test_incident(session, title, utcnow())
        record(session, incident, EventKind.STEP_FINISHED, actor, {"step": "assess"})
        record(session, incident, EventKind.REPORT_WRITTEN, "flow-run/1", {"regime": "eu-gdpr"})
        return incident.key


@SQLITE_ONLY
def test_the_pdf_report_shows_the_incident_and_its_timeline(db, tmp_path):
    key = _declare(db, "客服凭证被滥用 Support credential misuse")

    result = export_incident(key, ExportFormat.PDF, tmp_path, "dora")

    assert result.path.parent == tmp_path  # a folder given: the default name inside it
    reader = PdfReader(result.path)
    assert reader.metadata.title == f"{key} — 客服凭证被滥用 Support credential misuse"
    text = " ".join((page.extract_text() or "") for page in reader.pages)
    assert "Support credential misuse" in text and "客服凭证被滥用" in text
    for kind in ("incident.declared", "step.finished", "report.written"):
        assert kind in text
    assert "Timeline verified at export: 3 events" in text
    # Told in sentences, every detail whole: not "step=assess" or JSON cut at 300 characters.
    flat = " ".join(text.split())
    assert "The “assess” step finished." in flat
    assert "Incident declared: “客服凭证被滥用 Support credential misuse”, severity high" in flat
    assert "step=assess" not in flat and '{"' not in flat


@SQLITE_ONLY
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralized(db, tmp_path):
    title = '=HYPERLINK("http://x")'
    key = _declare(db, title, actor="@SUM(1)")

    csv_file = export_incident(key, ExportFormat.CSV, tmp_path / "t.csv", "-dora").path
    json_file = export_incident(key, ExportFormat.JSON, tmp_path / "t.json", "+dora").path

    rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8-sig"))))
    assert [r["kind"] for r in rows] == ["incident.declared", "step.finished", "report.written"]
    assert {r["title"] for r in rows} == {"'" + title}
    assert rows[1]["actor"] == "'@SUM(1)"
    assert json.loads(rows[0]["details"])["title"] == title  # inside JSON text: inert
    for cell, shown in [("+1", "'+1"), ("-1", "'-1"), ("\tx", "'\tx"), ("\rx", "'\rx")]:
        assert neutralize(cell) == shown
    # The JSON export keeps the exact values (its hashes depend on them).
    document = json.loads(json_file.read_text(encoding="utf-8"))
    assert document["incident"]["title"] == title
    assert document["exported_by"] == "+dora"
    assert [e["actor"] for e in document["timeline"]["events"]][:3] == [
        "test:seed",
        "@SUM(1)",
        "flow-run/1",
    ]
    assert document["timeline"]["events"][3]["kind"] == "export.written"  # the CSV export


def _breach(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``breach ARGS`` with the test's settings (no Prefect needed: exports do not run flows)."""
    return subprocess.run(
        [BREACH, *args],
        env=os.environ | {"COLUMNS": "250"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@SQLITE_ONLY
def test_export_and_verify_on_the_command_line(db, settings, tmp_path):
    key = _declare(db, "Support credential misuse")

    done = _breach("export", key, "--format", "bundle")
    assert done.returncode == 0, done.stderr
    (bundle,) = (settings.home / "exports" / key).glob("*.zip")
    assert f"bundle export written to {bundle}" in done.stdout
    with db.unit_of_work() as session:
        head = commands.get_incident(session, key).timeline_head  # after the export event
    assert "timeline head " in done.stdout and head not in done.stdout

    # Offline: a database URL nothing answers at proves no database is needed.
    offline = {"BREACH_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}
    done = _breach("audit", "verify", "--bundle", str(bundle), **offline)
    assert done.returncode == 0, done.stderr
    assert f"bundle of {key} verified: files match the manifest (1); timeline 3 events" in (
        done.stdout
    )

    changed = tmp_path / "changed.zip"
    _rewrite(bundle, changed, TIMELINE, lambda d: _flip_byte(d, _actor_of_event_2(d)))
    done = _breach("audit", "verify", "--bundle", str(changed), **offline)
    assert done.returncode == 1
    assert "bundle does NOT verify" in done.stderr
    assert "timeline broken at event 2: content does not match its hash" in done.stderr
    assert "Traceback" not in done.stderr

    # Mistakes are told plainly (in-process: these need no fresh process).
    not_a_zip = tmp_path / "notes.txt"
    not_a_zip.write_text("hello")
    runner = CliRunner()
    for args, code, message in [
        (("--bundle", str(not_a_zip)), 1, "is not a readable zip file"),
        (("--bundle", str(tmp_path / "gone.zip")), 1, "no such file"),
        ((), 2, "give an incident key or --bundle FILE"),
        ((key, "--bundle", str(bundle)), 2, "give an incident key or --bundle FILE"),
        ((key, "--head", "ab12"), 2, "--head goes with --bundle"),
        (("--bundle", str(bundle), "--head", "ab12"), 1, "not at the expected ab12"),
    ]:
        done = runner.invoke(app, ["audit", "verify", *args], env={"COLUMNS": "250"})
        assert (done.exit_code, message in done.stderr) == (code, True), done.stderr
    done = runner.invoke(app, ["export", "INC-2099-9999", "--format", "json"])
    assert isinstance(done.exception, BreachError)  # `breach` prints these without a traceback
    assert "no incident 'INC-2099-9999'" in str(done.exception)
