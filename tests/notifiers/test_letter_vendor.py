"""The mailing vendor's hand-over: decrypted with the vendor's own age identity, read back.

Real parts throughout: pyrage encrypts and decrypts (an identity made here stands for the
vendor's), WeasyPrint prints the proofs and pypdf reads them back.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from pypdf import PdfReader

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.notice import NoticeContent
from breachflow.notifiers.letter_vendor import (
    MERGE_COLUMNS,
    MERGE_FILE,
    VendorHandover,
    Wave,
)
from breachflow.rendering.merge import SAMPLES, merge_template
from tests.notifiers.test_letter import ADDRESSES, NAMES, ORGANISATION, flat, notice, outbound

TODAY = datetime.now(UTC).date()
#: Letters 1 and 2 are posted today (wave 0), 3 tomorrow (wave 1); 4 has no usable address.
WAVES = {
    1: Wave(0, TODAY),
    2: Wave(0, TODAY),
    3: Wave(1, TODAY + timedelta(days=1)),
    4: Wave(1, TODAY + timedelta(days=1)),
}
UNNAMED_ADDRESS = "Flat 9, 3 Quiet Road\nLeeds\nLS1 4AP\nUnited Kingdom"


def content(locale: str, named: bool) -> NoticeContent:
    """The notice a merge template is made from, as the dispatcher builds it."""
    fields = vars(notice(locale, recipient_name="x" if named else None))
    return NoticeContent(**{k: v for k, v in fields.items() if k in NoticeContent.model_fields})


def templates() -> dict[tuple[str, bool, str | None], str]:
    return {
        (locale, named, None): merge_template(content(locale, named))
        for locale, named in (("en", True), ("zh-CN", True), ("en", False))
    }


def batch() -> list[OutboundMessage]:
    """An English and a Chinese letter, one without a name, one without a usable address."""
    unnamed = outbound(3).model_copy(update={"recipient_name": None, "recipient": UNNAMED_ADDRESS})
    return [outbound(1, "en"), outbound(2, "zh-CN"), unnamed, outbound(4, recipient_address="")]


def hand_over(directory: Path, recipient: str, messages: list[OutboundMessage]):
    notifier = VendorHandover(
        directory,
        recipient=recipient,
        organisation=ORGANISATION,
        incident_key="INC-2026-0001",
        notice_version=2,
        templates=templates(),
        waves=WAVES,
    )
    results = asyncio.run(notifier.send(messages))
    mapped = {r.notification_id: r for r in results}
    assert len(mapped) == len(results) == len(messages), "one result per message"
    return mapped


@dataclass
class HandedOver:
    directory: Path
    identity: pyrage.x25519.Identity
    batch: list[OutboundMessage]
    results: dict[int, DeliveryResult]

    @property
    def folder(self) -> Path:
        return self.directory / str(self.results[1].provider_message_id)

    def merge_rows(self) -> list[dict[str, str]]:
        clear = pyrage.decrypt((self.folder / MERGE_FILE).read_bytes(), [self.identity])
        reader = csv.DictReader(io.StringIO(clear.decode("utf-8"), newline=""))
        assert tuple(reader.fieldnames or ()) == MERGE_COLUMNS
        return list(reader)

    def manifest(self) -> dict:
        return json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def handed(tmp_path_factory: pytest.TempPathFactory) -> HandedOver:
    identity = pyrage.x25519.Identity.generate()
    directory = tmp_path_factory.mktemp("vendor") / "drop"
    messages = batch()
    return HandedOver(
        directory, identity, messages, hand_over(directory, str(identity.to_public()), messages)
    )


def test_letters_are_handed_over_not_sent(handed: HandedOver) -> None:
    """Handed over with the hand-over id and the day to post; nobody is 'sent' yet."""
    [handover] = {r.provider_message_id for n, r in handed.results.items() if n != 4}
    assert handover and handover.startswith(f"V{TODAY:%Y%m%d}-")
    for number in (1, 2, 3):
        result = handed.results[number]
        assert result.status is DeliveryStatus.HANDED_OVER
        assert result.mail_on == WAVES[number].mail_on
    assert handed.results[4].status is DeliveryStatus.FAILED_PERMANENT
    assert handed.results[4].detail == "no usable postal address"
    assert [p.name for p in handed.directory.iterdir()] == [handover]  # no .partial left


def test_the_merge_file_decrypts_with_the_vendors_key_and_holds_every_letter(
    handed: HandedOver,
) -> None:
    rows = handed.merge_rows()
    assert [r["reference"] for r in rows] == [m.message_id for m in handed.batch[:3]]
    en, zh, unnamed = rows
    assert (en["recipient_name"], zh["recipient_name"], unnamed["recipient_name"]) == (
        NAMES["en"],
        NAMES["zh-CN"],
        "",
    )
    # The window prints the name, then the address block: a leading name line is not repeated.
    assert en["address_block"] == "\n".join(ADDRESSES["en"].splitlines()[1:])
    assert unnamed["address_block"] == UNNAMED_ADDRESS
    assert zh["address_line_2"] == "上海市浦东新区世纪大道100号"
    assert zh["country_or_last_line"] == "中国"
    assert [r["wave"] for r in rows] == ["0", "0", "1"]
    assert [r["mail_on"] for r in rows] == [str(WAVES[n].mail_on) for n in (1, 2, 3)]
    assert zh["letter_date"] == f"{TODAY.year}年{TODAY.month}月{TODAY.day}日"
    assert [r["template"] for r in rows] == [
        "template-en.html",
        "template-zh-CN.html",
        "template-en-unnamed.html",
    ]
    assert {r["notice_version"] for r in rows} == {"2"}


def test_another_key_cannot_open_it(handed: HandedOver) -> None:
    stranger = pyrage.x25519.Identity.generate()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt((handed.folder / MERGE_FILE).read_bytes(), [stranger])


def test_no_name_or_address_is_anywhere_in_clear_under_the_drop_folder(
    handed: HandedOver,
) -> None:
    """Byte for byte, every file (hidden ones included) and every proof's text."""
    # Every line that is theirs (a country is not: the sample person has one too).
    secrets = [NAMES["en"], NAMES["zh-CN"], *ADDRESSES["en"].splitlines()[:4]]
    secrets += [*ADDRESSES["zh-CN"].splitlines()[1:4], *UNNAMED_ADDRESS.splitlines()[:3]]
    files = [p for p in handed.directory.rglob("*") if p.is_file()]
    assert len(files) == 8  # merge, manifest, 3 templates, 3 proofs
    for path in files:
        raw = path.read_bytes()
        texts = [raw]
        if path.suffix == ".pdf":
            texts.append("".join(p.extract_text() for p in PdfReader(path).pages).encode())
        for secret in secrets:
            for text in texts:
                assert secret.encode() not in text, f"{secret!r} in {path.name}"


def test_the_manifest_counts_and_hashes_the_files_as_written(handed: HandedOver) -> None:
    manifest = handed.manifest()
    assert manifest["handover"] == handed.folder.name
    assert manifest["notice_version"] == 2
    assert manifest["letters"] == 3
    assert manifest["by_locale"] == {"en": 2, "zh-CN": 1}
    assert manifest["waves"] == [
        {"wave": 0, "mail_on": str(TODAY), "letters": 2},
        {"wave": 1, "mail_on": str(TODAY + timedelta(days=1)), "letters": 1},
    ]
    assert manifest["merge"]["encrypted_for"] == str(handed.identity.to_public())
    on_disk = {p.name for p in handed.folder.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, entry in manifest["files"].items():
        raw = (handed.folder / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}, name


def test_the_hand_over_is_private_to_its_owner(handed: HandedOver) -> None:
    assert stat.S_IMODE(handed.folder.stat().st_mode) == 0o700
    for file in handed.folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name


def test_the_template_has_placeholders_and_the_proof_is_it_filled_for_a_sample(
    handed: HandedOver,
) -> None:
    template = (handed.folder / "template-en.html").read_text(encoding="utf-8")
    for field in ("{{recipient_name}}", "{{address_block}}", "{{letter_date}}"):
        assert field in template
    assert "{%" not in template and "Dear {{recipient_name}}," in template
    unnamed = (handed.folder / "template-en-unnamed.html").read_text(encoding="utf-8")
    assert "{{recipient_name}}" not in unnamed and "Dear customer," in unnamed
    proof = flat("".join(p.extract_text() for p in PdfReader(handed.folder / "proof-en.pdf").pages))
    name, address = SAMPLES["en"]
    assert flat(f"Dear {name},") in proof
    assert all(flat(line) in proof for line in address.splitlines())
    assert flat(f"{TODAY.day} {TODAY:%B %Y}") in proof
    assert flat(notice("en").what_happened) in proof
    zh = flat("".join(p.extract_text() for p in PdfReader(handed.folder / "proof-zh-CN.pdf").pages))
    assert flat(f"尊敬的{SAMPLES['zh'][0]}：") in zh


def test_a_rehandover_after_a_crash_rewrites_the_same_folder(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    messages = batch()[:2]
    first = hand_over(tmp_path, recipient, messages)[1].provider_message_id
    assert first
    (tmp_path / first / "stale.csv").write_bytes(b"from the crashed attempt")

    again = hand_over(tmp_path, recipient, list(reversed(messages)))
    assert {r.provider_message_id for r in again.values()} == {first}
    assert [p.name for p in tmp_path.iterdir()] == [first]
    assert not (tmp_path / first / "stale.csv").exists()
    clear = pyrage.decrypt((tmp_path / first / MERGE_FILE).read_bytes(), [identity])
    assert len(list(csv.DictReader(io.StringIO(clear.decode(), newline="")))) == 2

    other = hand_over(tmp_path, recipient, messages[:1])[1].provider_message_id
    assert other != first


def test_an_unwritable_drop_folder_defers_everything(tmp_path: Path) -> None:
    blocker = tmp_path / "mount"
    blocker.write_text("not a directory")
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    results = hand_over(blocker / "letters", recipient, batch()[:3])
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert all(r.detail and "not writable" in r.detail for r in results.values())


def test_texts_that_look_like_merge_fields_are_refused() -> None:
    """The vendor's merge would replace them: what was approved would not be printed."""
    tricky = content("en", True).model_copy(update={"remedies": "Use code {{promo}}."})
    with pytest.raises(Exception, match="merge would take for a field"):
        merge_template(tricky)


def test_the_waves_mail_dates_are_iso_days() -> None:
    assert date.fromisoformat(str(WAVES[3].mail_on)) == TODAY + timedelta(days=1)
