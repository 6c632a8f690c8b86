"""Checking an exported bundle with nothing but the file: no database, no settings.

A bundle (:mod:`flows.export.write`) is a zip of the JSON export (``timeline.json``), the
incident's regulator report packs and announcement pages, and ``manifest.json`` with every
other file's SHA-256 and the timeline's length and head hash. The check recomputes the
chain with the same :func:`models.timeline.event_hash` the database check uses, and holds
each report file to the hash its chained ``report.*`` event recorded.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from breachflow.models.timeline import ChainCheck, DetachedEvent, check_chain

BUNDLE_FORMAT = "breachflow.bundle/1"
MANIFEST = "manifest.json"
TIMELINE = "timeline.json"
#: A bundle is checked in memory: its JSON parts are read whole, up to this size each.
MAX_JSON_BYTES = 1 << 30


@dataclass(frozen=True)
class BundleCheck:
    """The outcome of :func:`verify_bundle`: ``ok``, or every problem found."""

    ok: bool
    problems: tuple[str, ...] = ()
    incident: str | None = None
    files: int = 0  # files whose SHA-256 matched the manifest
    events: int = 0
    head: str | None = None
    broken_at: int | None = None  # the first timeline event that does not verify

    @property
    def reason(self) -> str | None:
        return "; ".join(self.problems) or None


class _Unusable(Exception):
    """The bundle cannot be checked any further; the message says why."""


def verify_bundle(path: Path, expected_head: str | None = None) -> BundleCheck:
    """Check a bundle with nothing but the file: every member's SHA-256 against the
    manifest (none missing, none extra), and the timeline's chain against the head the
    manifest records. Never raises for a bad file: the reason is in the result.

    A bundle rebuilt whole, manifest included, is consistent with itself; ``expected_head``
    (what `breach export` printed, or the ``export.written`` event on the incident's
    timeline) ties it to the record it was exported from."""
    try:
        with zipfile.ZipFile(path) as archive:
            check = _check_archive(archive)
    except FileNotFoundError:
        return BundleCheck(False, (f"no such file: {path}",))
    except IsADirectoryError:
        return BundleCheck(False, (f"{path} is a folder, not a bundle",))
    except zipfile.BadZipFile as exc:
        return BundleCheck(False, (f"{path} is not a readable zip file: {exc}",))
    except _Unusable as exc:
        return BundleCheck(False, (str(exc),))
    except OSError as exc:
        return BundleCheck(False, (f"cannot read {path}: {exc.strerror or exc}",))
    if expected_head is None or check.head == expected_head.strip().lower():
        return check
    ends = f"ends at head {check.head}" if check.head else "does not verify"
    return replace(
        check,
        ok=False,
        problems=(*check.problems, f"the timeline {ends}, not at the expected {expected_head}"),
    )


def _check_archive(archive: zipfile.ZipFile) -> BundleCheck:
    # Directory entries, which re-zipping a bundle with ``zip -r`` adds, carry no content:
    # nothing to verify. One that carries bytes is checked like any other member.
    names = [i.filename for i in archive.infolist() if not (i.is_dir() and i.file_size == 0)]
    problems = [f"{n} appears {c} times in the zip" for n, c in Counter(names).items() if c > 1]
    manifest = _manifest(archive)
    listed: dict[str, str] = manifest["files"]
    matched, digests = 0, {}
    for name in sorted(set(names) - {MANIFEST}):
        expected = listed.get(name)
        if expected is None:
            problems.append(f"{name} is in the zip but not in the manifest")
            continue
        try:
            actual = _member_sha256(archive, name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            problems.append(f"{name} cannot be read from the zip: {exc}")
            continue
        digests[name] = actual
        if actual != expected:
            problems.append(
                f"{name} does not match the manifest: SHA-256 {actual}, manifest {expected}"
            )
        else:
            matched += 1
    problems += [
        f"{n} is in the manifest but missing from the zip" for n in listed if n not in names
    ]
    chain, events = _timeline_chain(archive, manifest) if TIMELINE in names else (None, [])
    if chain is None:
        problems.append(f"{TIMELINE} is missing")
    elif not chain.ok:
        problems.append(f"timeline broken at event {chain.broken_at}: {chain.reason}")
    else:
        problems += _reports_against_timeline(digests, events)
    return BundleCheck(
        ok=not problems,
        problems=tuple(problems),
        incident=manifest["incident"],
        files=matched,
        events=chain.events if chain else 0,
        head=chain.head if chain and chain.ok else None,
        broken_at=chain.broken_at if chain else None,
    )


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    """The manifest, checked for the fields the check relies on."""
    if MANIFEST not in archive.namelist():
        raise _Unusable(f"the zip has no {MANIFEST}: not a Breachflow bundle")
    try:
        manifest = json.loads(_read_limited(archive, MANIFEST))
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _Unusable(f"{MANIFEST} cannot be read: {exc}") from None
    if not isinstance(manifest, dict):
        raise _Unusable(f"{MANIFEST} is not a {BUNDLE_FORMAT} manifest")
    chain, files = manifest.get("chain"), manifest.get("files")
    if (
        manifest.get("format") != BUNDLE_FORMAT
        or not isinstance(manifest.get("incident"), str)
        or not isinstance(files, dict)
        or not all(isinstance(v, str) for v in files.values())
        or not isinstance(chain, dict)
        or type(chain.get("events")) is not int
        or not isinstance(chain.get("head"), str | None)
    ):
        raise _Unusable(f"{MANIFEST} is not a {BUNDLE_FORMAT} manifest")
    return manifest


def _reports_against_timeline(digests: dict[str, str], events: list[DetachedEvent]) -> list[str]:
    """Each report file against the SHA-256 the chained timeline recorded when it was
    written (the latest ``report.*`` event naming it). The manifest alone can be rewritten
    with the files; these hashes cannot be without breaking the chain, so with the head
    checked (``--head``) a swapped report is found."""
    recorded: dict[str, tuple[int, str]] = {}
    for event in events:
        payload = event.fields["payload"]
        files = payload.get("files") if isinstance(payload, dict) else None
        if not str(event.fields["kind"]).startswith("report.") or not isinstance(files, dict):
            continue
        sha256 = files.get("sha256")
        hashes = sha256 if isinstance(sha256, dict) else {}
        for suffix, stored in files.items():
            if suffix != "sha256" and isinstance(stored, str) and hashes.get(suffix):
                recorded[f"reports/{PurePosixPath(stored).name}"] = (event.seq, hashes[suffix])
    return [
        f"{name} is not the file the timeline recorded at event {seq} (SHA-256 {expected})"
        for name, (seq, expected) in sorted(recorded.items())
        if name in digests and digests[name] != expected
    ]


def _timeline_chain(
    archive: zipfile.ZipFile, manifest: dict[str, Any]
) -> tuple[ChainCheck, list[DetachedEvent]]:
    """Recompute the exported chain, event by event, to the head the manifest records."""
    try:
        document = json.loads(_read_limited(archive, TIMELINE))
        raw = document["timeline"]["events"]
        if not isinstance(raw, list):
            raise TypeError("events is not a list")
    except (
        ValueError,
        KeyError,
        TypeError,
        _Unusable,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
    ) as exc:
        return ChainCheck(False, 0, None, 1, f"{TIMELINE} cannot be read as a timeline: {exc}"), []
    events = []
    for seq, item in enumerate(raw, start=1):
        try:
            events.append(DetachedEvent.from_export(item))
        except ValueError as exc:
            return ChainCheck(False, seq, None, seq, f"the event {exc}"), []
    expected = manifest["chain"]
    check = check_chain(events, expected["events"], expected["head"], recorded_by="the manifest")
    return check, events


def _read_limited(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise _Unusable(f"{name} is larger than {MAX_JSON_BYTES >> 20} MiB")
    return data


def _member_sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as member:
        while block := member.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
