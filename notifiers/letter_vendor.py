"""Letters through a mailing vendor: a batch handed over as data, a template and a proof.

Above a volume (``BREACH_LETTER_VENDOR_THRESHOLD``) rendering a PDF per person is the
vendor's job, as print-and-mail houses work: they merge a data file into an approved
template on their own presses. A batch becomes one folder ``<directory>/V<date>-<hash>/``:

- ``merge.csv.age``: one row per letter (``MERGE_COLUMNS``): our reference (the message
  id, which the vendor's return file quotes), the wave and the day to post it, the
  template, the notice version, the name and address. Encrypted in memory with age for the
  vendor's public key and only then written: no name or address is ever on disk in clear,
  not even in the staging folder.
- ``template-<locale>.html`` (and ``template-<locale>-unnamed.html`` for people we have no
  name for): our letter with ``{{field}}`` placeholders (``rendering/merge.py``).
- ``proof-<locale>.pdf``: that template filled for a fictitious sample person and printed
  by WeasyPrint, for the operator and the vendor to sign off. Template and proof hold the
  notice's public texts and no one's data, so they are in clear for the vendor to read.
- ``manifest.json``: counts per locale and per wave, each file's SHA-256 as written, the
  notice version, the key the data is encrypted for, when; no personal data.

The folder appears whole or not at all, and a re-handover of the same batch after a crash
rewrites the same folder (``dropfolder.py``); the vendor treats a hand-over id it has seen
as a replacement. A handed-over letter is not sent: the ledger keeps it ``handed_over``
until the vendor's return file says it was mailed or came back.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyrage

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.dropfolder import DropFolder, write_private
from breachflow.notifiers.letter import (
    ADDRESS_LINES,
    NO_ADDRESS,
    address_columns,
    address_lines,
)
from breachflow.rendering.merge import TEMPLATE_FIELDS, address_block, fill, letter_date, sample
from breachflow.rendering.pdf import PdfRenderer

PREFIX = "V"  # hand-over folders: V<date>-<hash>; PDF batches are L<date>-<hash>
MERGE_FILE = "merge.csv.age"
MANIFEST_FILE = "manifest.json"
MERGE_COLUMNS = (
    "reference",
    "sequence",
    "wave",
    "mail_on",
    "letter_date",
    "template",
    "locale",
    "notice_version",
    "recipient_name",
    "address_block",
    *(f"address_line_{i}" for i in range(1, ADDRESS_LINES + 1)),
    "country_or_last_line",
)
#: What the vendor sends back, one row per letter (``breach letters returns``).
RETURN_COLUMNS = ("reference", "status", "date", "reason")
RETURN_STATUSES = ("mailed", "undeliverable")


@dataclass(frozen=True)
class Wave:
    """When a letter is to be posted: the vendor's daily capacity fills day after day."""

    number: int
    mail_on: date


#: A merge template is made per locale, per "has a name" (the greeting differs) and per
#: time zone (the notice's times are the reader's).
TemplateKey = tuple[str, bool, str | None]


class VendorHandover:
    """Hands a batch of letters to the mailing vendor as an encrypted merge hand-over.

    Built per batch by the dispatcher, which hands in what only it knows: the templates
    (rendered from the incident's notice texts) and each letter's wave.
    """

    name = "letter"

    def __init__(
        self,
        directory: Path,
        *,
        recipient: str,
        organisation: str,
        incident_key: str,
        notice_version: int,
        templates: Mapping[TemplateKey, str],
        waves: Mapping[int, Wave],
    ) -> None:
        self.folder = DropFolder(directory)
        self.recipient = recipient
        self.age_recipient = pyrage.x25519.Recipient.from_str(recipient)
        self.organisation = organisation
        self.incident_key = incident_key
        self.notice_version = notice_version
        self.templates = templates
        self.waves = waves

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        return await asyncio.to_thread(self._hand_over, batch)

    def _hand_over(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        letters: list[OutboundMessage] = []
        for msg in batch:
            if len(address_lines(msg.recipient)) < 2:
                results.append(
                    DeliveryResult(
                        notification_id=msg.notification_id,
                        status=DeliveryStatus.FAILED_PERMANENT,
                        detail=NO_ADDRESS,
                    )
                )
            else:
                letters.append(msg)
        if not letters:
            return results
        try:
            handover = self.folder.batch_id(PREFIX, (msg.message_id for msg in batch))
            files = self._files(handover, letters)
            with self.folder.staging(handover) as staging:
                for name, content in files.items():
                    write_private(staging / name, content)
                self.folder.publish(staging, handover)
        except OSError as exc:  # nothing was handed over: try the whole batch again later
            reason = f"vendor drop folder not writable: {exc.strerror or type(exc).__name__}"
            return results + [
                DeliveryResult(
                    notification_id=msg.notification_id,
                    status=DeliveryStatus.DEFERRED,
                    detail=reason,
                )
                for msg in letters
            ]
        return results + [
            DeliveryResult(
                notification_id=msg.notification_id,
                status=DeliveryStatus.HANDED_OVER,
                provider_message_id=handover,
                mail_on=self.waves[msg.notification_id].mail_on,
            )
            for msg in letters
        ]

    def _files(self, handover: str, letters: list[OutboundMessage]) -> dict[str, bytes]:
        """Every file of the hand-over, in memory: the merge data already encrypted."""
        keys = sorted({_key(msg) for msg in letters})
        first_day = min(self.waves[msg.notification_id].mail_on for msg in letters)
        files = {MERGE_FILE: pyrage.encrypt(self._merge_data(letters), [self.age_recipient])}
        proofs = PdfRenderer()
        for key in keys:
            template = self.templates[key]
            files[template_name(key)] = template.encode()
            filled = fill(template, sample(key[0], first_day))
            files[proof_name(key)] = proofs.pdf(
                filled, title=f"Proof {self.incident_key} {key[0]}", author=self.organisation
            )
        files[MANIFEST_FILE] = self._manifest(handover, letters, keys, files)
        return files

    def _merge_data(self, letters: list[OutboundMessage]) -> bytes:
        """The vendor's data file: UTF-8 CSV, every value exactly as it is to be printed
        (no spreadsheet-formula guard: a quote before a name would be printed too)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(MERGE_COLUMNS)
        for sequence, msg in enumerate(letters, start=1):
            wave = self.waves[msg.notification_id]
            writer.writerow(
                [
                    msg.message_id,
                    sequence,
                    wave.number,
                    wave.mail_on.isoformat(),
                    letter_date(wave.mail_on, msg.locale),
                    template_name(_key(msg)),
                    msg.locale,
                    self.notice_version,
                    msg.recipient_name or "",
                    address_block(msg.recipient_name, msg.recipient),
                    *address_columns(msg.recipient),
                ]
            )
        return out.getvalue().encode()

    def _manifest(
        self,
        handover: str,
        letters: list[OutboundMessage],
        keys: list[TemplateKey],
        files: Mapping[str, bytes],
    ) -> bytes:
        """What the vendor checks the hand-over against: counts and hashes, no one's data."""
        waves = Counter(self.waves[msg.notification_id] for msg in letters)
        manifest = {
            "handover": handover,
            "incident": self.incident_key,
            "organisation": self.organisation,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "notice_version": self.notice_version,
            "letters": len(letters),
            "by_locale": dict(sorted(Counter(msg.locale for msg in letters).items())),
            "waves": [
                {"wave": wave.number, "mail_on": wave.mail_on.isoformat(), "letters": n}
                for wave, n in sorted(waves.items(), key=lambda item: item[0].number)
            ],
            "merge": {
                "file": MERGE_FILE,
                "encryption": "age (X25519)",
                "encrypted_for": self.recipient,
                "format": "CSV, UTF-8, header row, RFC 4180 quoting",
                "columns": list(MERGE_COLUMNS),
                "placeholders": list(TEMPLATE_FIELDS),
            },
            "templates": [
                {
                    "template": template_name(key),
                    "proof": proof_name(key),
                    "locale": key[0],
                    "named": key[1],
                }
                for key in keys
            ],
            "files": {
                name: {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
                for name, content in sorted(files.items())
            },
            "return_file": {
                "columns": list(RETURN_COLUMNS),
                "status": list(RETURN_STATUSES),
                "date": "YYYY-MM-DD, the day the letter was posted or came back",
            },
        }
        return json.dumps(manifest, indent=2, ensure_ascii=False).encode() + b"\n"


def template_name(key: TemplateKey) -> str:
    return f"template-{_variant(key)}.html"


def proof_name(key: TemplateKey) -> str:
    return f"proof-{_variant(key)}.pdf"


def _variant(key: TemplateKey) -> str:
    """``en``, ``zh-CN-unnamed``, ``en-America_Los_Angeles``: locale, zone, greeting."""
    locale, named, zone = key
    return f"{_safe(locale)}{'-' + _safe(zone) if zone else ''}{'' if named else '-unnamed'}"


def _key(msg: OutboundMessage) -> TemplateKey:
    return msg.locale, bool(msg.recipient_name), msg.timezone


def _safe(locale: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", locale)
