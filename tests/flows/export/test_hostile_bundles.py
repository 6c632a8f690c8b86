"""`audit verify --bundle` on bundles built to hurt the checker (issue 17, item 8).

A bundle is handed to compliance by whoever exported it, so the check must survive any
zip: each case here once ended in a bare traceback or gigabytes of memory, and must now
end in a stated reason. The bundles are built by hand (no database): a valid one first,
so each case changes one thing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from breachflow.cli.app import app
from breachflow.flows.export.verify import (
    MANIFEST,
    MAX_JSON_DEPTH,
    TIMELINE,
    verify_bundle,
)
from breachflow.models.timeline import GENESIS, event_hash


def _events(count: int, payload: object = None) -> list[dict[str, object]]:
    events, previous = [], GENESIS
    for seq in range(1, count + 1):
        fields = {
            "incident_id": 1,
            "seq": seq,
            "occurred_at": "2026-12-01T10:00:00.000000Z",
            "recorded_at": "2026-12-01T10:00:00.000000Z",
            "actor": "test:seed",
            "kind": "incident.declared" if seq == 1 else "note.added",
            "payload": payload if payload is not None else {"n": seq, "ratio": 0.5},
            "prev_hash": previous,
        }
        previous = event_hash(fields)
        events.append({**fields, "hash": previous})
    return events


def _timeline(events: list[dict[str, object]], padding: str = "") -> bytes:
    document = {"format": "x", "incident": {"key": "INC-1"}, "timeline": {"events": events}}
    return (json.dumps(document) + padding).encode()


def _write(
    path: Path,
    members: dict[str, bytes],
    events: int,
    head: str | None,
) -> Path:
    manifest = {
        "format": "breachflow.bundle/1",
        "incident": "INC-1",
        "chain": {"events": events, "head": head},
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _valid(path: Path, count: int = 3) -> Path:
    events = _events(count)
    return _write(path, {TIMELINE: _timeline(events)}, count, str(events[-1]["hash"]))


def _patch_headers(path: Path, name: str, *, flag: int = 0, method: int | None = None) -> None:
    """Set a general-purpose flag bit or the compression method of ``name`` in both its
    local header and its central directory entry, as a hostile zip would carry them."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, flags_at, method_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 8, 26, 30),
        (b"PK\x01\x02", 8, 10, 28, 46),
    ):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            start = at + 4
            length = int.from_bytes(data[at + name_len_at : at + name_len_at + 2], "little")
            if bytes(data[at + name_at : at + name_at + length]) != encoded:
                continue
            flags = int.from_bytes(data[at + flags_at : at + flags_at + 2], "little") | flag
            data[at + flags_at : at + flags_at + 2] = flags.to_bytes(2, "little")
            if method is not None:
                data[at + method_at : at + method_at + 2] = method.to_bytes(2, "little")
    path.write_bytes(bytes(data))


def _set_method(path: Path, name: str, method: int) -> None:
    _patch_headers(path, name, method=method)


def test_the_hand_built_bundle_verifies(tmp_path):
    """The baseline every case below departs from."""
    check = verify_bundle(_valid(tmp_path / "ok.zip"))
    assert check.ok, check.problems
    assert (check.events, check.files) == (3, 1)


@pytest.mark.parametrize("member", [TIMELINE, MANIFEST])
def test_a_member_flagged_encrypted_is_a_stated_problem(tmp_path, member):
    bundle = _valid(tmp_path / "enc.zip")
    _patch_headers(bundle, member, flag=0x1)
    check = verify_bundle(bundle)
    assert not check.ok
    assert f"{member} is encrypted" in check.reason


def test_the_command_line_names_the_problem_and_exits_1(tmp_path):
    bundle = _valid(tmp_path / "enc.zip")
    _patch_headers(bundle, TIMELINE, flag=0x1)
    done = CliRunner().invoke(app, ["audit", "verify", "--bundle", str(bundle)])
    assert done.exit_code == 1, done.output
    assert "bundle does NOT verify" in done.stderr
    assert f"{TIMELINE} is encrypted" in done.stderr
    assert done.exception is None or isinstance(done.exception, SystemExit)


@pytest.mark.parametrize("method", [9, 99])
def test_a_compression_method_zipfile_cannot_read_is_a_stated_problem(tmp_path, method):
    """9 is Deflate64, 99 is WinZip's AES: both raised NotImplementedError before."""
    bundle = _valid(tmp_path / f"m{method}.zip")
    _set_method(bundle, TIMELINE, method)
    check = verify_bundle(bundle)
    assert not check.ok
    assert f"{TIMELINE} uses compression method {method}, which cannot be read" in check.reason


def test_a_report_member_that_cannot_be_read_does_not_stop_the_check(tmp_path):
    """A member other than the manifest and the timeline: reported by name, the chain is
    still checked."""
    events = _events(2)
    members = {TIMELINE: _timeline(events), "reports/a.pdf": b"%PDF-1.7 report"}
    bundle = _write(tmp_path / "r.zip", members, 2, str(events[-1]["hash"]))
    _set_method(bundle, "reports/a.pdf", 99)
    check = verify_bundle(bundle)
    assert not check.ok
    assert check.events == 2 and check.head == events[-1]["hash"]
    assert check.problems == ("reports/a.pdf uses compression method 99, which cannot be read",)


def test_a_timeline_nested_100000_deep_is_refused_by_depth(tmp_path):
    nested = b"[" * 100_000 + b"]" * 100_000
    deep = b'{"incident": ' + nested + b', "timeline": {"events": []}}'
    bundle = _write(tmp_path / "deep.zip", {TIMELINE: deep}, 1, None)
    check = verify_bundle(bundle)
    assert not check.ok
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in check.reason


def test_an_event_payload_nested_100000_deep_is_refused_by_depth(tmp_path):
    body = json.dumps({"timeline": {"events": [{"payload": "X"}]}}).encode()
    deep = body.replace(b'"X"', b"[" * 100_000 + b"]" * 100_000)
    check = verify_bundle(_write(tmp_path / "deep2.zip", {TIMELINE: deep}, 1, None))
    assert f"nests deeper than {MAX_JSON_DEPTH} levels" in check.reason


def test_a_manifest_nested_100000_deep_is_unusable_not_a_traceback(tmp_path):
    bundle = tmp_path / "deepm.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, b"[" * 100_000 + b"]" * 100_000)
    check = verify_bundle(bundle)
    assert check.problems == (f"{MANIFEST} cannot be read: it nests too deeply",)


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        (b'{"timeline": {"events": [{"seq": 1}]}}', "the event lacks"),
        (b'{"timeline": {"events": [7]}}', "the event is not a JSON object"),
        (b'{"timeline": {"events": [[1]]}}', "the event is not a JSON object"),
        (b'{"timeline": {"events": 5}}', "it has no timeline.events list"),
        (b'{"timeline": {"events": [', f"{TIMELINE} cannot be read as a timeline"),
    ],
)
def test_a_timeline_that_is_not_one_says_why(tmp_path, events, reason):
    check = verify_bundle(_write(tmp_path / "bad.zip", {TIMELINE: events}, 1, None))
    assert not check.ok
    assert reason in check.reason


def test_a_zip_bomb_timeline_is_refused_before_it_is_read(tmp_path):
    """A 4.5 MB zip whose timeline.json expands to 1 GiB: refused by its declared size
    (zipfile never yields more than the declared size, and fails the CRC past it)."""
    bundle = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(MANIFEST, json.dumps(_manifest_for({TIMELINE: "0" * 64})))
        with archive.open(TIMELINE, "w", force_zip64=True) as member:
            block = b" " * (1 << 20)
            for _ in range(1024):
                member.write(block)
    assert bundle.stat().st_size < 8 << 20
    check = verify_bundle(bundle)
    assert not check.ok
    assert f"{TIMELINE} is larger than 256 MiB (1,073,741,824 bytes)" in check.reason


def _manifest_for(files: dict[str, str]) -> dict[str, object]:
    return {
        "format": "breachflow.bundle/1",
        "incident": "INC-1",
        "chain": {"events": 1, "head": None},
        "files": files,
    }


def test_a_large_timeline_is_streamed_not_held(tmp_path):
    """200 MiB of timeline within the bound: checked in a fresh process whose peak memory
    stays far below the member's size (it was 2x the size when the file was read whole)."""
    events = _events(5)
    padding = " " * (200 << 20)
    timeline = _timeline(events, padding)
    bundle = _write(tmp_path / "big.zip", {TIMELINE: timeline}, 5, str(events[-1]["hash"]))
    del timeline, padding
    # VmHWM, not ru_maxrss: the latter survives exec, so the child would start with this
    # process's peak (which held the 200 MiB being written).
    probe = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from breachflow.flows.export.verify import verify_bundle\n"
        "def peak():\n"
        "    status = Path('/proc/self/status').read_text()\n"
        "    return int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
        "before = peak()\n"
        "check = verify_bundle(Path(sys.argv[1]))\n"
        "print(check.ok, check.events, (peak() - before) // 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=True,
    )
    ok, count, grown_mib = done.stdout.split()
    assert (ok, count) == ("True", "5")
    assert int(grown_mib) < 50, f"the check grew by {grown_mib} MiB for a 200 MiB timeline"
