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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import ijson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ijson.common import ObjectBuilder

from breachflow.models.anchor import Checkpoint, best_of, holds
from breachflow.models.timeline import ChainCheck, DetachedEvent, check_chain

BUNDLE_FORMAT = "breachflow.bundle/1"
MANIFEST = "manifest.json"
TIMELINE = "timeline.json"
#: The timeline's signed checkpoints (models/anchor.py), when the export could reach any.
CHECKPOINTS = "checkpoints.jsonl"

# A bundle comes from anyone who hands one to compliance, so nothing in it is trusted to be
# small, shallow or readable: each bound below turns a hostile file into a stated reason.
#: The manifest is read whole; a real one lists a few hundred files.
MAX_MANIFEST_BYTES = 16 << 20
#: The timeline is streamed one event at a time, so memory follows the largest event, not
#: the file; this bounds the time a check can take (a real incident's is a few megabytes).
MAX_TIMELINE_BYTES = 256 << 20
LIMITS = {
    MANIFEST: MAX_MANIFEST_BYTES,
    TIMELINE: MAX_TIMELINE_BYTES,
    CHECKPOINTS: MAX_MANIFEST_BYTES,
}
#: How deep the JSON may nest. An event's payload is a few levels deep; a hostile one
#: 100,000 levels deep would exhaust the stack of any recursive reader.
MAX_JSON_DEPTH = 64
#: What :mod:`zipfile` reads without extra libraries. Anything else (Deflate64 is 9, AES
#: is 99) is reported as a member that cannot be checked, never as a traceback.
READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
#: Reading a member can fail in these ways; each becomes a problem with the member's name.
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


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
    #: What anchors the chain beyond the bundle itself: the signed checkpoint that holds,
    #: or why there is none (no checkpoints, or no public key to check them with).
    anchor: str | None = None

    @property
    def reason(self) -> str | None:
        return "; ".join(self.problems) or None


class _Unusable(Exception):
    """The bundle cannot be checked any further; the message says why."""


def verify_bundle(
    path: Path,
    expected_head: str | None = None,
    keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> BundleCheck:
    """Check a bundle with nothing but the file: every member's SHA-256 against the
    manifest (none missing, none extra), and the timeline's chain against the head the
    manifest records. Never raises for a bad file: the reason is in the result.

    A bundle rebuilt whole, manifest included, is consistent with itself; ``expected_head``
    (what `breach export` printed, or the ``export.written`` event on the incident's
    timeline) ties it to the record it was exported from; so do the signed checkpoints the
    bundle carries, checked with ``keys`` (``{key id: public key}``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            check = _check_archive(archive, keys or {})
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


def _check_archive(archive: zipfile.ZipFile, keys: Mapping[str, Ed25519PublicKey]) -> BundleCheck:
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
            actual = _member_sha256(archive, name, LIMITS.get(name))
        except _Unusable as exc:
            problems.append(str(exc))
            continue
        except _UNREADABLE as exc:
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
    checkpoints = _checkpoints(archive, problems) if CHECKPOINTS in names else []
    wanted = {c.events for c in checkpoints}
    chain, events, hashes = (
        _timeline_chain(archive, manifest, wanted) if TIMELINE in names else (None, [], {})
    )
    anchor = None
    if chain is None:
        problems.append(f"{TIMELINE} is missing")
    elif not chain.ok:
        problems.append(f"timeline broken at event {chain.broken_at}: {chain.reason}")
    else:
        problems += _reports_against_timeline(digests, events)
        anchor = _anchor(checkpoints, manifest["incident"], chain.events, hashes, keys, problems)
    return BundleCheck(
        ok=not problems,
        problems=tuple(problems),
        incident=manifest["incident"],
        files=matched,
        events=chain.events if chain else 0,
        head=chain.head if chain and chain.ok else None,
        broken_at=chain.broken_at if chain else None,
        anchor=anchor,
    )


def _checkpoints(archive: zipfile.ZipFile, problems: list[str]) -> list[Checkpoint]:
    """The bundle's checkpoints; a line that is not one is a problem of its own."""
    try:
        with _open_member(archive, CHECKPOINTS, LIMITS[CHECKPOINTS]) as member:
            lines = member.read().decode("utf-8", errors="replace").splitlines()
    except (_Unusable, *_UNREADABLE) as exc:
        problems.append(f"{CHECKPOINTS} cannot be read: {exc}")
        return []
    found = []
    for number, line in enumerate(lines, start=1):
        try:
            found.append(Checkpoint.from_line(line))
        except (ValueError, RecursionError) as exc:
            problems.append(f"{CHECKPOINTS} line {number} is not a checkpoint: {exc}")
    return found


def _anchor(
    checkpoints: list[Checkpoint],
    incident: str,
    length: int,
    hashes: Mapping[int, str],
    keys: Mapping[str, Ed25519PublicKey],
    problems: list[str],
) -> str:
    """The checkpoint that anchors the bundle's chain, said as a sentence; each one that
    does not hold is a problem."""
    if not checkpoints:
        return "no signed checkpoint in the bundle: only --head ties it to the record"
    if not keys:
        return (
            f"{len(checkpoints)} signed checkpoint(s) in the bundle, not checked:"
            " give the signing key's public half with --public-key"
        )
    valid = []
    for checkpoint in checkpoints:
        problem = holds(
            checkpoint,
            incident=incident,
            incident_id=None,
            length=length,
            hashes=hashes,
            keys=keys,
            anchor=CHECKPOINTS,
            where="in the bundle",
        )
        if problem:
            problems.append(problem)
        else:
            valid.append(checkpoint)
    best = best_of(valid)
    if best is None:
        return "no checkpoint in the bundle holds"
    return (
        f"anchored by {CHECKPOINTS}: the checkpoint of event {best.events} signed"
        f" {best.signed_at} by key {best.key_id} holds"
    )


def _manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    """The manifest, checked for the fields the check relies on."""
    if MANIFEST not in archive.namelist():
        raise _Unusable(f"the zip has no {MANIFEST}: not a Breachflow bundle")
    try:
        with _open_member(archive, MANIFEST, LIMITS[MANIFEST]) as member:
            manifest = json.loads(member.read())
    except RecursionError:
        raise _Unusable(f"{MANIFEST} cannot be read: it nests too deeply") from None
    except (ValueError, *_UNREADABLE) as exc:
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
    archive: zipfile.ZipFile, manifest: dict[str, Any], wanted: set[int]
) -> tuple[ChainCheck, list[DetachedEvent], dict[int, str]]:
    """Recompute the exported chain, event by event, to the head the manifest records.

    Returns the ``report.*`` events too, and the hashes of the events numbered in
    ``wanted`` (those checkpoints name): the only parts the later checks need, so the
    whole timeline is never held."""
    reports: list[DetachedEvent] = []
    hashes: dict[int, str] = {}

    def keeping_reports(events: Iterator[DetachedEvent]) -> Iterator[DetachedEvent]:
        for event in events:
            if str(event.fields["kind"]).startswith("report."):
                reports.append(event)
            if event.seq in wanted:
                hashes[event.seq] = event.hash
            yield event

    expected = manifest["chain"]
    try:
        with _open_member(archive, TIMELINE, LIMITS[TIMELINE]) as member:
            events = keeping_reports(_stream_events(member))
            check = check_chain(
                events, expected["events"], expected["head"], recorded_by="the manifest"
            )
    except _BadEvent as exc:
        return ChainCheck(False, exc.seq, None, exc.seq, f"the event {exc}"), [], {}
    except (_Unusable, ValueError, ijson.JSONError, *_UNREADABLE) as exc:
        unreadable = f"{TIMELINE} cannot be read as a timeline: {exc}"
        return ChainCheck(False, 0, None, 1, unreadable), [], {}
    return check, reports, hashes


_SCALARS = {"null", "boolean", "integer", "double", "number", "string"}


class _BadEvent(ValueError):
    """One event of the exported timeline is not an event; ``seq`` says which."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq


def _stream_events(member: IO[bytes]) -> Iterator[DetachedEvent]:
    """The events of ``timeline.events``, one at a time, from a stream of JSON tokens.

    ``ijson.basic_parse`` rather than ``ijson.items``: the latter builds a path string per
    token, which for a deeply nested member costs memory quadratic in the depth. Here the
    depth is counted, and refused past :data:`MAX_JSON_DEPTH`."""
    path: list[str | None] = []  # per open container: its current key (None in a list)
    builder: ObjectBuilder | None = None
    seq, found = 0, False
    for kind, value in ijson.basic_parse(member, use_float=True):
        if kind in ("start_map", "start_array"):
            if len(path) >= MAX_JSON_DEPTH:
                raise _Unusable(f"{TIMELINE} nests deeper than {MAX_JSON_DEPTH} levels")
            if path == ["timeline", "events"] and kind == "start_array":
                found = True
            path.append(None)
        elif kind == "map_key":
            path[-1] = value
        elif kind in ("end_map", "end_array"):
            path.pop()
        if builder is None and found and path[:3] == ["timeline", "events", None]:
            if len(path) == 4 and kind == "start_map":
                builder, seq = ObjectBuilder(), seq + 1
            elif len(path) == 4 or (len(path) == 3 and kind in _SCALARS):
                raise _BadEvent(seq + 1, "is not a JSON object")
        if builder is not None:
            builder.event(kind, value)
            if len(path) == 3:  # the event's object just closed
                try:
                    yield DetachedEvent.from_export(builder.value)
                except ValueError as exc:
                    raise _BadEvent(seq, str(exc)) from None
                builder = None
    if not found:
        raise _Unusable("it has no timeline.events list")


def _open_member(archive: zipfile.ZipFile, name: str, limit: int | None = None) -> IO[bytes]:
    """A zip member opened for reading (use it in ``with``), refused first if it cannot be
    read safely: flagged encrypted, compressed with a method :mod:`zipfile` cannot undo, or
    declaring more than ``limit`` bytes. :mod:`zipfile` never returns more than the declared
    size (and fails the CRC if the data would go on), so a zip bomb stops at the limit."""
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise _Unusable(f"{name} is encrypted: a bundle is never encrypted member by member")
    if info.compress_type not in READABLE_METHODS:
        raise _Unusable(
            f"{name} uses compression method {info.compress_type}, which cannot be read"
        )
    if limit is not None and info.file_size > limit:
        raise _Unusable(f"{name} is larger than {limit >> 20} MiB ({info.file_size:,} bytes)")
    return archive.open(info)


def _member_sha256(archive: zipfile.ZipFile, name: str, limit: int | None) -> str:
    digest = hashlib.sha256()
    with _open_member(archive, name, limit) as member:
        while block := member.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
