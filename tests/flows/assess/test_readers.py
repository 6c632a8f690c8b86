"""Reading exports of affected people: CSV in any delimiter and encoding, JSON Lines, Parquet."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select

from breachflow.flows.assess.readers import SAMPLE_BYTES, SNIFF_CHARS
from breachflow.models import runtime
from breachflow.models.commands import declare
from breachflow.models.crypto import Vault
from breachflow.models.db import Database
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Severity
from breachflow.models.subject import Subject
from tests.testkit.factories import run_import

CHINESE = {"C1": "王芳", "C2": "李雷", "C3": "张伟"}


@pytest.fixture
def keys(db: Database) -> Vault:
    """The data key's vault, fetched before any unit of work (it runs its own)."""
    return runtime.vault()


@pytest.fixture
def incident_id(db: Database) -> int:
    now = datetime.now(UTC)
    with db.unit_of_work() as session:
        incident = declare(
            session,
            title="Export read",
            description="A stolen credential was used.",
            severity=Severity.HIGH,
            detected_at=now - timedelta(hours=5),
            aware_at=now - timedelta(hours=2),
            data_categories=["email"],
            actor="alice",
        )
        return incident.id


def people(db: Database, keys: Vault, incident_id: int) -> dict[str, dict[str, Any]]:
    """subject_id → decrypted name, email, phone and the line the person came from."""
    with db.unit_of_work() as session:
        rows = session.scalars(select(Subject).where(Subject.incident_id == incident_id))
        return {
            s.external_id: {
                "name": keys.decrypt("name", s.name_enc),
                "email": keys.decrypt("email", s.email_enc),
                "phone": keys.decrypt("phone", s.phone_enc),
                "line": s.source_line,
            }
            for s in rows
        }


def person(name: str | None, email: str | None, phone: str | None, line: int) -> dict[str, Any]:
    return {"name": name, "email": email, "phone": phone, "line": line}


def chinese_csv(delimiter: str = ",") -> str:
    d = delimiter
    rows = [f"{sid}{d}{name}{d}{sid.lower()}@example.cn" for sid, name in CHINESE.items()]
    return f"subject_id{delimiter}name{delimiter}email\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("delimiter", "suffix", "label"),
    [(",", "csv", "','"), (";", "csv", "';'"), ("\t", "tsv", "tab"), ("|", "txt", "'|'")],
    ids=["comma", "semicolon", "tab", "pipe"],
)
def test_csv_in_any_delimiter_is_read(
    db: Database,
    keys: Vault,
    incident_id: int,
    tmp_path: Path,
    delimiter: str,
    suffix: str,
    label: str,
) -> None:
    """Comma, semicolon, tab and pipe delimited files are sniffed and read alike."""
    d = delimiter
    text = (
        f"subject_id{d}name{d}email{d}phone{d}country\n"
        f"D1{d}Ada Lovelace{d}ada@example.com{d}+44 20 7946 0958{d}GB\n"
        f'D2{d}"Wang{d} Fang"{d}wang@example.cn{d}138 0013 8000{d}CN\n'
        f"D3{d}Chen Li{d}chen@example.cn{d}{d}CN\n"
    )
    path = tmp_path / f"affected.{suffix}"
    path.write_text(text, encoding="utf-8")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.source == f"CSV, utf-8, {label}-delimited"
    assert (report.rows, report.new, report.rejected_count) == (3, 3, 0)
    assert people(db, keys, incident_id) == {
        "D1": person("Ada Lovelace", "ada@example.com", "+442079460958", 2),
        "D2": person(f"Wang{d} Fang", "wang@example.cn", "+8613800138000", 3),
        "D3": person("Chen Li", "chen@example.cn", None, 4),
    }


def test_a_utf8_bom_is_understood(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Excel's UTF-8 with BOM: the first column is still subject_id and names are intact."""
    path = tmp_path / "bom.csv"
    path.write_bytes(chinese_csv().encode("utf-8-sig"))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.source.startswith("CSV, utf-8-sig")
    assert report.rejected == []
    assert {k: v["name"] for k, v in people(db, keys, incident_id).items()} == CHINESE


def test_a_gb18030_file_is_detected(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A GB18030 export with Chinese names is recognised and the names decrypt correctly."""
    path = tmp_path / "gb.csv"
    path.write_bytes(chinese_csv().encode("gb18030"))
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.source == "CSV, gb18030, ','-delimited"
    assert report.rejected == []
    assert {k: v["name"] for k, v in people(db, keys, incident_id).items()} == CHINESE


@pytest.mark.parametrize("encoding", ["gb18030", "GB18030"])
def test_an_explicit_encoding_is_used(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, encoding: str
) -> None:
    """encoding='gb18030' given by the user reads a GB18030 file correctly."""
    path = tmp_path / "gb.csv"
    path.write_bytes(chinese_csv(";").encode("gb18030"))
    report = run_import(db, keys, incident_id, path, tmp_path, encoding=encoding)
    assert report.rejected == []
    assert {k: v["name"] for k, v in people(db, keys, incident_id).items()} == CHINESE


def test_an_unknown_encoding_is_a_clear_error(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """An encoding name Python does not know raises InvalidInput naming it."""
    path = tmp_path / "affected.csv"
    path.write_text(chinese_csv(), encoding="utf-8")
    with pytest.raises(InvalidInput, match="unknown encoding 'klingon-8'"):
        run_import(db, keys, incident_id, path, tmp_path, encoding="klingon-8")
    assert people(db, keys, incident_id) == {}


def test_an_invalid_byte_after_the_sample_rejects_only_its_row(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Past the encoding sample, a row with bytes that are not UTF-8 is rejected by line."""
    filler = [f"F{n},Filler Person {n},filler{n}@example.com\n" for n in range(1, 2001)]
    head = ("subject_id,name,email\n" + "".join(filler)).encode()
    assert len(head) > SAMPLE_BYTES
    bad_line = len(filler) + 2
    data = (
        head
        + b"X1,Ren\xe9e Dupont,renee@example.com\n"  # Latin-1 in a UTF-8 file
        + "C1,王芳,c1@example.cn\n".encode()
    )
    path = tmp_path / "mixed.csv"
    path.write_bytes(data)
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.rejected == [(bad_line, "bytes that are not valid utf-8")]
    stored = people(db, keys, incident_id)
    assert len(stored) == len(filler) + 1 and "X1" not in stored
    assert stored["C1"] == person("王芳", "c1@example.cn", None, bad_line + 1)


@pytest.mark.parametrize(
    "bad_name", [b"Jos\xe9 Garc\xeda", b"Ren\xe9e Dupont"], ids=["refused", "mojibake"]
)
def test_an_invalid_byte_mid_file_rejects_only_its_row(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, bad_name: bytes
) -> None:
    """One Latin-1 row in a small UTF-8 file is rejected by line; the rest import intact."""
    data = (
        "subject_id,name,email\nC1,王芳,c1@example.cn\n".encode()
        + b"X1," + bad_name + b",x1@example.com\n"
        + "C2,李雷,c2@example.cn\nC3,张伟,c3@example.cn\n".encode()
    )  # fmt: skip
    path = tmp_path / "mixed.csv"
    path.write_bytes(data)
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.rejected == [(3, "bytes that are not valid utf-8")]
    assert {k: v["name"] for k, v in people(db, keys, incident_id).items()} == CHINESE


def test_json_lines_are_read_line_by_line(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A non-object line and a broken line are rejected with their line; the others import."""
    lines = [
        json.dumps({"subject_id": "J1", "name": "王芳", "email": "j1@example.com"}),
        json.dumps(["J2", "j2@example.com"]),
        '{"subject_id": "J3", "email": "j3@example.com"',
        "",
        json.dumps({"subject_id": 5, "phone": "+1 415 555 2671", "country": "US"}),
    ]
    path = tmp_path / "affected.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.source == "JSON Lines"
    assert [line for line, _ in report.rejected] == [2, 3]
    assert report.rejected[0][1] == "not a JSON object"
    assert report.rejected[1][1].startswith("not valid JSON")
    assert (report.rows, report.new) == (4, 2)
    assert people(db, keys, incident_id) == {
        "J1": {"name": "王芳", "email": "j1@example.com", "phone": None, "line": 1},
        "5": {"name": None, "email": None, "phone": "+14155552671", "line": 5},
    }


@pytest.mark.parametrize("first", ["[1, 2]", '"subject_id"'], ids=["array", "string"])
def test_a_json_lines_file_starting_with_a_non_object_is_a_clear_error(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, first: str
) -> None:
    """When line 1 is not a JSON object, InvalidInput says so (no crash, no made-up columns)."""
    path = tmp_path / "affected.jsonl"
    path.write_text(first + '\n{"subject_id": "J2", "email": "j2@example.com"}\n')
    with pytest.raises(InvalidInput, match="line 1 is not a JSON object"):
        run_import(db, keys, incident_id, path, tmp_path)


def test_parquet_rows_are_numbered_from_one(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A Parquet export written by pyarrow imports; rows are numbered from 1 in rejects too."""
    table = pa.table(
        {
            "subject_id": ["P1", "", "P3"],
            "name": ["王芳", "Nobody", None],
            "email": ["p1@example.com", "p2@example.com", None],
            "phone": [None, None, "+86 138 0013 8000"],
        }
    )
    path = tmp_path / "affected.parquet"
    pq.write_table(table, path)
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.source == "Parquet, 3 rows"
    assert report.rejected == [(2, "subject_id is empty")]
    assert people(db, keys, incident_id) == {
        "P1": {"name": "王芳", "email": "p1@example.com", "phone": None, "line": 1},
        "P3": {"name": None, "email": None, "phone": "+8613800138000", "line": 3},
    }


def test_parquet_integer_subject_ids_are_read_as_text(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """An int64 subject_id column is stored as its decimal text."""
    table = pa.table(
        {"subject_id": pa.array([101, 102], pa.int64()), "email": ["t1@example.com", None]}
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.rejected == []
    assert set(people(db, keys, incident_id)) == {"101", "102"}


def test_parquet_columns_we_ignore_may_have_any_type(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A timestamp column we do not use is ignored and listed; it rejects nobody."""
    table = pa.table(
        {
            "subject_id": ["T1", "T2"],
            "email": ["t1@example.com", "t2@example.com"],
            "last_login": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us")),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.ignored_columns == ["last_login"]
    assert report.rejected == []
    assert set(people(db, keys, incident_id)) == {"T1", "T2"}


MAPPING = {"email": "EmailAddress", "phone": "Mobile", "subject_id": "CustomerID"}


def test_map_renames_columns_case_insensitively(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """--map email=EmailAddress etc. matches the file's columns whatever their case."""
    path = tmp_path / "crm.csv"
    path.write_text(
        "customerid,Full Name,EMAILADDRESS,mobile\n"
        "M1,Mia Mapped,mia@example.com,+44 20 7946 0958\n",
        encoding="utf-8",
    )
    report = run_import(db, keys, incident_id, path, tmp_path, mapping=MAPPING)
    assert report.rejected == []
    assert report.ignored_columns == ["full name"]
    assert people(db, keys, incident_id) == {
        "M1": {"name": None, "email": "mia@example.com", "phone": "+442079460958", "line": 2}
    }


def test_map_works_for_parquet(db: Database, keys: Vault, incident_id: int, tmp_path: Path) -> None:
    """--map renames Parquet columns the same way."""
    path = tmp_path / "crm.parquet"
    pq.write_table(pa.table({"CustomerID": ["M1"], "EmailAddress": ["mia@example.com"]}), path)
    mapping = {"email": "emailaddress", "subject_id": "customerid"}
    report = run_import(db, keys, incident_id, path, tmp_path, mapping=mapping)
    assert report.rejected == []
    assert people(db, keys, incident_id)["M1"]["email"] == "mia@example.com"


def test_map_naming_a_missing_column_lists_the_files_columns(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A --map source the file lacks is InvalidInput naming it and listing the columns there are."""
    path = tmp_path / "crm.csv"
    path.write_text("CustomerID,EmailAddress,Phone Number\nM1,mia@example.com,\n")
    with pytest.raises(InvalidInput) as caught:
        run_import(db, keys, incident_id, path, tmp_path, mapping=MAPPING)
    message = str(caught.value)
    assert "mobile" in message.lower()
    assert "it has: CustomerID, EmailAddress, Phone Number" in message
    assert people(db, keys, incident_id) == {}


def test_an_unknown_suffix_is_a_clear_error(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A .xlsx file raises InvalidInput naming the formats that are understood."""
    path = tmp_path / "people.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(InvalidInput, match=r"unknown format '\.xlsx'.*\.csv.*\.jsonl.*\.parquet"):
        run_import(db, keys, incident_id, path, tmp_path)


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.parquet"])
def test_an_empty_file_is_a_clear_error(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, name: str
) -> None:
    """An empty file of any format raises InvalidInput naming the file."""
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
        run_import(db, keys, incident_id, path, tmp_path)
    assert people(db, keys, incident_id) == {}


def test_a_missing_file_is_a_clear_error(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """Importing a path that does not exist raises InvalidInput, not a traceback."""
    with pytest.raises(InvalidInput, match="no such file"):
        run_import(db, keys, incident_id, tmp_path / "nope.csv", tmp_path)


def test_hostile_json_lines_are_rejected_each_on_its_own(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A line nested 200,000 deep (RecursionError) and an integer of 5,000 digits
    (ValueError) once ended the whole import with a traceback."""
    lines = [
        json.dumps({"subject_id": "J1", "email": "j1@example.com"}),
        '{"subject_id": "J2", "name": ' + "[" * 200_000 + "]" * 200_000 + "}",
        '{"subject_id": ' + "9" * 5000 + "}",
        json.dumps({"subject_id": "J4", "email": "j4@example.com"}),
    ]
    path = tmp_path / "affected.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert [line for line, _ in report.rejected] == [2, 3]
    assert report.rejected[0][1] == "not readable: JSON nested too deep"
    assert report.rejected[1][1].startswith("not valid JSON: Exceeds the limit")
    assert sorted(people(db, keys, incident_id)) == ["J1", "J4"]

    deep_first = tmp_path / "deep.jsonl"
    deep_first.write_text("[" * 200_000 + "]" * 200_000 + "\n" + lines[0] + "\n")
    with pytest.raises(InvalidInput, match="line 1 is not a JSON object"):
        run_import(db, keys, incident_id, deep_first, tmp_path)


def test_a_long_line_is_rejected_alone_and_the_dialect_guessed_from_a_bounded_prefix(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "affected.csv"
    path.write_text(
        "subject_id,name,email\n"
        "C1,Ann,c1@example.com\n"
        f"C2,{'x' * 200_000},c2@example.com\n"
        "C3,Cy,c3@example.com\n",
        encoding="utf-8",
    )
    sniffed: list[int] = []
    sniff = csv.Sniffer.sniff
    monkeypatch.setattr(
        csv.Sniffer,
        "sniff",
        lambda self, text, d=None: sniffed.append(len(text)) or sniff(self, text, d),
    )
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.rejected == [(3, "field 'name' is longer than 1000 characters")]
    assert sorted(people(db, keys, incident_id)) == ["C1", "C3"]
    # The dialect is guessed from a bounded prefix: the sniffer is quadratic in a line.
    assert sniffed and max(sniffed) <= SNIFF_CHARS


def test_a_corrupt_parquet_row_group_rejects_its_rows_and_the_others_land(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path
) -> None:
    """A corrupted page once aborted the whole import with an OSError."""
    ids = [f"P{n}" for n in range(1, 31)]
    table = pa.table({"subject_id": ids, "email": [f"{i.lower()}@example.com" for i in ids]})
    path = tmp_path / "affected.parquet"
    pq.write_table(table, path, row_group_size=10)
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset + column.total_compressed_size // 2
    data[start : column.data_page_offset + column.total_compressed_size] = b"\xab" * (
        column.data_page_offset + column.total_compressed_size - start
    )
    path.write_bytes(bytes(data))
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert [line for line, _ in report.rejected] == list(range(11, 21))
    assert report.rejected[0][1].startswith("row group 2 is not readable")
    assert sorted(people(db, keys, incident_id)) == sorted(ids[:10] + ids[20:])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
LINES = st.one_of(
    st.dictionaries(st.sampled_from(["subject_id", "email", "name", "x"]), JSON_VALUES).map(
        json.dumps
    ),
    st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t),
)


@examples(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINES, min_size=1, max_size=8), suffix=st.sampled_from(["jsonl", "csv"]))
def test_any_file_is_imported_or_refused_and_every_row_is_accounted_for(
    db: Database, keys: Vault, incident_id: int, tmp_path: Path, lines: list[str], suffix: str
) -> None:
    """Whatever a file holds: a clear refusal of the whole file, or a report in which every
    row is new, merged or rejected with its line. Never another exception, never a row lost."""
    path = tmp_path / f"people.{suffix}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        report = run_import(db, keys, incident_id, path, tmp_path)
    except InvalidInput:
        return
    assert report.rows == report.new + report.merged + report.rejected_count
