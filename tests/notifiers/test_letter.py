"""The letter notifier: real WeasyPrint PDFs from the shipped templates, read back with pypdf."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.notice import parse_notice_texts
from breachflow.notifiers.letter import MANIFEST_COLUMNS, LetterNotifier
from breachflow.rendering.environment import environment
from tests.testkit.factories import EXAMPLE_NOTICE, HEADINGS

ORGANISATION = "Example Operator Ltd."
ADDRESSES = {
    "en": "Jane Example\nFlat 4, 12 High Street\nLondon\nSW1A 1AA\nUnited Kingdom",
    "zh-CN": "王芳\n上海市浦东新区世纪大道100号\n1栋2单元1203室\n200120\n中国",
}
NAMES = {"en": "Jane Example", "zh-CN": "王芳"}


def notice(locale: str, **overrides: object) -> SimpleNamespace:
    """What the flow passes the templates as ``n``: NoticeContent plus the postal address."""
    texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8")))
    fields: dict[str, object] = {
        **texts[locale].for_channel("letter").model_dump(exclude_none=True, exclude={"channels"}),
        "locale": locale,
        "organisation": ORGANISATION,
        "incident_key": "INC-2026-0001",
        "detected_at": datetime(2026, 11, 20, 1, 30, tzinfo=UTC),
        "aware_at": datetime(2026, 11, 20, 7, 0, tzinfo=UTC),
        "detected_offset": "UTC",
        "aware_offset": "UTC",
        "contact_point": "privacy@example.com, +86 400 000 0000",
        "recipient_name": NAMES[locale],
        "recipient_address": ADDRESSES[locale],
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def outbound(number: int, locale: str = "en", **overrides: object) -> OutboundMessage:
    """A letter as the flow builds it: both templates rendered, the address as recipient."""
    n = notice(locale, **overrides)
    env = environment()
    return OutboundMessage(
        notification_id=number,
        message_id=f"<INC-2026-0001-{number}-letter-v1@breachflow>",
        channel=Channel.LETTER,
        recipient=n.recipient_address or "",
        recipient_name=n.recipient_name,
        locale=locale,
        subject=n.subject_line,
        text=env.get_template(f"notice/letter.{locale}.txt.j2").render(n=n),
        html=env.get_template(f"notice/letter.{locale}.html.j2").render(n=n),
    )


def send(directory: Path, batch: list[OutboundMessage]) -> dict[int, DeliveryResult]:
    results = asyncio.run(LetterNotifier(directory, organisation=ORGANISATION).send(batch))
    mapped = {r.notification_id: r for r in results}
    assert len(mapped) == len(results) == len(batch), "one result per message"
    return mapped


def read_manifest(folder: Path) -> list[dict[str, str]]:
    raw = (folder / "manifest.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
    return list(reader)


def flat(text: str) -> str:
    """Text without whitespace: PDF extraction breaks lines wherever the layout did."""
    return "".join(text.split())


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def embedded_fonts(path: Path) -> set[str]:
    """The PostScript names inside the embedded font programs (not just the PDF label)."""
    names = set()
    for page in PdfReader(path).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                for key in ("/FontFile2", "/FontFile3"):
                    if key in descriptor:
                        program = descriptor[key].get_object().get_data()
                        names.add(TTFont(io.BytesIO(program))["name"].getDebugName(6))
    return names


@dataclass
class Printed:
    directory: Path
    batch: list[OutboundMessage]
    results: dict[int, DeliveryResult]

    @property
    def folder(self) -> Path:
        return self.directory / str(self.results[1].provider_message_id)

    def pdf(self, number: int) -> Path:
        [row] = [r for r in read_manifest(self.folder) if r["sequence"] == str(number)]
        return self.folder / row["file"]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Printed:
    """One English and one Chinese letter handed over as one batch (rendered once)."""
    directory = tmp_path_factory.mktemp("vendor") / "drop"
    batch = [outbound(1, "en"), outbound(2, "zh-CN")]
    return Printed(directory, batch, send(directory, batch))


def test_every_letter_is_sent_as_one_batch_folder(printed: Printed) -> None:
    """Both sent, with the batch id as provider id; the folder holds two PDFs and a manifest."""
    assert {r.status for r in printed.results.values()} == {DeliveryStatus.SENT}
    [batch_id] = {r.provider_message_id for r in printed.results.values()}
    assert batch_id and batch_id.startswith(f"L{datetime.now(UTC):%Y%m%d}-")
    assert [p.name for p in printed.directory.iterdir()] == [batch_id]
    files = sorted(p.name for p in printed.folder.iterdir())
    assert files == sorted(["manifest.csv", *(r["file"] for r in read_manifest(printed.folder))])
    assert all(
        name.endswith(".pdf") and "<" not in name for name in files if name != "manifest.csv"
    )


@pytest.mark.parametrize(("number", "locale"), [(1, "en"), (2, "zh-CN")])
def test_the_pdf_says_everything_the_notice_must(
    printed: Printed, number: int, locale: str
) -> None:
    """Headings, every text, the address, reference, date and page numbers are in the PDF."""
    text = flat(pdf_text(printed.pdf(number)))
    n = notice(locale)
    for heading in HEADINGS[locale]["html"]:
        assert flat(heading) in text, heading
    fields = ["what_happened", "data_involved", "possible_impact", "measures_taken"]
    fields += ["protective_steps", "remedies", "contact_point", "subject_line", "incident_key"]
    for field in fields:
        assert flat(getattr(n, field)) in text, field
    for line in ADDRESSES[locale].splitlines():
        assert flat(line) in text, line
    today = datetime.now(UTC)
    if locale == "en":
        assert flat(f"{today.day} {today:%B %Y}") in text
        assert "20November2026at01:30(UTC)" in text
        assert "Page1of" in text and "ReferenceINC-2026-0001" in text
    else:
        assert f"{today.year}年{today.month}月{today.day}日" in text
        assert "2026-11-2001:30（UTC）" in text
        assert "第1页，共" in text and "编号INC-2026-0001" in text


def test_chinese_glyphs_come_from_the_shipped_noto_font(printed: Printed) -> None:
    """The CJK font is embedded (its Simplified Chinese face) so Chinese prints, not tofu."""
    assert flat("尊敬的王芳：") in flat(pdf_text(printed.pdf(2)))
    fonts = embedded_fonts(printed.pdf(2))
    assert any("NotoSansCJK" in name for name in fonts), fonts
    assert "NotoSansCJKsc-Regular" in fonts, fonts


def test_the_manifest_matches_the_pdfs(printed: Printed) -> None:
    """One row per letter: reference, name, address split, locale, page count and sha256."""
    rows = read_manifest(printed.folder)
    assert [r["sequence"] for r in rows] == ["1", "2"]
    assert [r["reference"] for r in rows] == [m.message_id for m in printed.batch]
    en, zh = rows
    assert (en["recipient_name"], zh["recipient_name"]) == ("Jane Example", "王芳")
    assert [en[f"address_line_{i}"] for i in range(1, 6)] == [
        "Jane Example",
        "Flat 4, 12 High Street",
        "London",
        "SW1A 1AA",
        "",
    ]
    assert (en["country_or_last_line"], zh["country_or_last_line"]) == ("United Kingdom", "中国")
    assert zh["address_line_2"] == "上海市浦东新区世纪大道100号"
    assert (en["locale"], zh["locale"]) == ("en", "zh-CN")
    for row in rows:
        pdf = printed.folder / row["file"]
        assert row["sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
        assert row["pages"] == str(len(PdfReader(pdf).pages))


def test_the_batch_is_private_to_its_owner(printed: Printed) -> None:
    """Names and addresses: folder 0700, every file 0600."""
    assert stat.S_IMODE(printed.folder.stat().st_mode) == 0o700
    for file in printed.folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name


def test_a_resend_replaces_the_same_folder(tmp_path: Path) -> None:
    """Same messages → same batch id; the folder is rewritten, not duplicated or merged."""
    batch = [outbound(1), outbound(3)]
    first = send(tmp_path, batch)
    batch_id = first[1].provider_message_id
    assert batch_id
    (tmp_path / batch_id / "stale.pdf").write_bytes(b"from the crashed attempt")

    again = send(tmp_path, list(reversed(batch)))
    assert {r.provider_message_id for r in again.values()} == {batch_id}
    assert [p.name for p in tmp_path.iterdir()] == [batch_id]  # no second folder, no .partial
    assert not (tmp_path / batch_id / "stale.pdf").exists()
    assert len(read_manifest(tmp_path / batch_id)) == 2

    other = send(tmp_path, [outbound(1)])
    assert other[1].provider_message_id != batch_id


def test_markup_in_the_notice_is_printed_as_text(tmp_path: Path) -> None:
    """A tag in an operator's text is escaped: it appears literally and changes nothing."""
    evil = '<script>alert("x")</script><b>bold</b>'
    result = send(tmp_path, [outbound(1, what_happened=evil)])[1]
    assert result.status is DeliveryStatus.SENT
    folder = tmp_path / str(result.provider_message_id)
    [row] = read_manifest(folder)
    assert flat(evil) in flat(pdf_text(folder / row["file"]))


def test_a_letter_without_a_usable_address_fails_permanently(tmp_path: Path) -> None:
    """Empty or one-line addresses fail alone; the rest of the batch is still handed over."""
    batch = [
        outbound(1, recipient_address=""),
        outbound(2, recipient_address="Somewhere Lane 7"),
        outbound(3),
    ]
    results = send(tmp_path, batch)
    for number in (1, 2):
        assert results[number].status is DeliveryStatus.FAILED_PERMANENT
        assert results[number].detail == "no usable postal address"
    assert results[3].status is DeliveryStatus.SENT
    rows = read_manifest(tmp_path / str(results[3].provider_message_id))
    assert [r["reference"] for r in rows] == [batch[2].message_id]


def test_a_page_that_cannot_render_fails_without_quoting_the_address(tmp_path: Path) -> None:
    """A page WeasyPrint cannot lay out is a permanent failure for that letter only."""
    broken = outbound(1).model_copy(update={"html": "<div>" * 3000 + "x"})
    results = send(tmp_path, [broken, outbound(2)])
    assert results[1].status is DeliveryStatus.FAILED_PERMANENT
    assert results[1].detail and "rendered" in results[1].detail
    for line in ADDRESSES["en"].splitlines():
        assert line not in results[1].detail
    assert results[2].status is DeliveryStatus.SENT
    assert len(read_manifest(tmp_path / str(results[2].provider_message_id))) == 1


def test_an_unwritable_drop_folder_defers_everything(tmp_path: Path) -> None:
    """If the folder cannot be written nothing is handed over: deferred, not charged."""
    blocker = tmp_path / "mount"
    blocker.write_text("not a directory")  # works even as root, unlike chmod
    results = send(blocker / "letters", [outbound(1), outbound(2, "zh-CN")])
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert all(r.provider_message_id is None for r in results.values())
    assert all(r.detail and "not writable" in r.detail for r in results.values())


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    assert asyncio.run(LetterNotifier(tmp_path, organisation=ORGANISATION).send([])) == []
    assert list(tmp_path.iterdir()) == []
