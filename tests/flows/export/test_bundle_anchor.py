"""A bundle carries the timeline's signed checkpoints, so the offline check is anchored too
(issue 17, item 5): a bundle rebuilt whole, manifest and all, agrees with itself, but not
with a checkpoint signed by a key its forger does not hold."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from breachflow.cli.app import app
from breachflow.flows.export.verify import CHECKPOINTS, MANIFEST, TIMELINE, verify_bundle
from breachflow.flows.export.write import ExportFormat, export_incident
from breachflow.models.anchor import Checkpoint, key_id, load_public_key
from breachflow.models.timeline import event_hash
from tests.conftest import SQLITE_ONLY
from tests.models.test_timeline import declare_with_events


def _forge(bundle: Path, target: Path, actor: str) -> None:
    """Rewrite event 2's actor, rehash the chain from there and rebuild the manifest: all a
    forger without the signing key can do to the file."""
    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(members[TIMELINE])
    previous = None
    for event in document["timeline"]["events"]:
        if previous is not None:
            event["prev_hash"] = previous
        if event["seq"] == 2:
            event["actor"] = actor
        event["hash"] = previous = event_hash(event)
    document["timeline"]["head"] = previous
    members[TIMELINE] = json.dumps(document).encode()
    manifest = json.loads(members.pop(MANIFEST))
    manifest["chain"]["head"] = previous
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items()}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            out.writestr(name, data)


@SQLITE_ONLY  # the export reads the same rows on both; the anchor tests run on both
def test_a_bundle_is_anchored_by_its_checkpoints_and_a_rebuilt_one_is_caught(
    anchored, db, tmp_path
):
    public, _ = anchored
    key = declare_with_events(db)
    result = export_incident(key, ExportFormat.BUNDLE, tmp_path / "b.zip", "compliance:eve")
    keys = {key_id(load_public_key(public)): load_public_key(public)}
    with zipfile.ZipFile(result.path) as archive:
        carried = archive.read(CHECKPOINTS).decode().splitlines()
    assert [Checkpoint.from_line(line).events for line in carried] == [5]

    check = verify_bundle(result.path, keys=keys)
    assert check.ok, check.problems
    assert check.anchor is not None and check.anchor.startswith(
        f"anchored by {CHECKPOINTS}: the checkpoint of event 5"
    )
    unchecked = verify_bundle(result.path)  # no key given: said, not passed off as anchored
    assert unchecked.ok and "not checked: give the signing key's public half" in unchecked.anchor

    forged = tmp_path / "forged.zip"
    _forge(result.path, forged, "someone-else")
    assert verify_bundle(forged).ok  # consistent with itself: what the checkpoint is for
    check = verify_bundle(forged, keys=keys)
    assert not check.ok
    assert any(
        p.startswith(f"{CHECKPOINTS}: the checkpoint of event 5") and "was rewritten" in p
        for p in check.problems
    ), check.problems

    done = CliRunner().invoke(
        app,
        ["audit", "verify", "--bundle", str(forged), "--public-key", str(public)],
        env={"COLUMNS": "400"},
    )
    assert done.exit_code == 1
    assert "bundle does NOT verify" in done.output and "the timeline was rewritten" in done.output
    done = CliRunner().invoke(
        app,
        ["audit", "verify", "--bundle", str(result.path), "--public-key", str(public)],
        env={"COLUMNS": "400"},
    )
    assert done.exit_code == 0, done.output
    assert f"anchored by {CHECKPOINTS}" in done.output
