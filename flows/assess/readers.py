"""Read exports of affected people, whatever shape they come in, one record at a time.

Formats by file suffix: CSV (``.csv``, ``.tsv``, ``.txt``; any delimiter, sniffed), JSON
Lines (``.jsonl``, ``.ndjson``) and Parquet (``.parquet``). CSV encoding: a UTF-8 BOM, else
UTF-8 if the start of the file decodes, else GB18030, unless ``encoding`` is given. Bytes
that do not decode later in the file do not stop the import: that row is rejected.

Every record carries its position for the reject report: the physical line where it starts
(CSV: line 1 is the header; JSON Lines: line 1 is the first record) or, for Parquet, the
row number. Records are streamed: memory stays flat whatever the file size.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from breachflow.models.errors import InvalidInput

SAMPLE_BYTES = 64 * 1024
SNIFF_CHARS = 4096  # what the CSV dialect is guessed from
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
DELIMITERS = ",;\t|"
UNDECODABLE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of bad bytes
csv.field_size_limit(sys.maxsize)  # over-long cells are rejected by row, not by crashing


@dataclass(frozen=True, slots=True)
class Record:
    line: int
    values: dict[str, str] | None  # canonical column → text; None when unreadable
    problem: str | None = None


@dataclass
class Source:
    columns: list[str]  # canonical names, after mapping
    records: Iterator[Record]
    total: int  # bytes, or rows for Parquet
    describe: str  # e.g. "CSV, GB18030, ';'-delimited"
    position: IO[bytes] | None = None  # for progress: .tell() of the raw file

    def done(self, rows: int) -> int:
        """Progress so far, in the unit of ``total``: bytes read, or rows for Parquet."""
        if self.position is None:
            return rows
        return self.total if self.position.closed else self.position.tell()


def open_source(
    path: Path, *, encoding: str | None, mapping: dict[str, str], used: frozenset[str]
) -> Source:
    """Open ``path``; records carry the ``used`` columns (our names, after ``mapping``)."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return _jsonl(path, mapping, used)
    if suffix == ".parquet":
        return _parquet(path, mapping, used)
    if suffix in CSV_SUFFIXES or not suffix:
        return _csv(path, encoding, mapping)
    raise InvalidInput(
        f"{path.name}: unknown format {suffix!r}; use .csv/.tsv/.txt, .jsonl/.ndjson or .parquet"
    )


def canonical_columns(header: list[str], mapping: dict[str, str]) -> list[str]:
    """Our column name for each of the file's: ``--map email=EmailAddress`` renames."""
    renames = {source.strip().lower(): ours for ours, source in mapping.items()}
    columns = [renames.get(name.strip().lower(), name.strip().lower()) for name in header]
    missing = [source for source in renames if source not in {c.strip().lower() for c in header}]
    if missing:
        raise InvalidInput(
            f"--map names columns the file does not have: {', '.join(missing)}; "
            f"it has: {', '.join(h.strip() for h in header)}"
        )
    return columns


def detect_encoding(sample: bytes) -> str:
    """UTF-8 unless most non-ASCII lines of the sample are not; then GB18030 if they are that.

    A few undecodable lines do not decide the encoding of the whole file: they are rows
    with a problem, rejected one by one. In a UTF-8 file most lines with non-ASCII bytes
    decode; in a GB18030 file almost none do. Other encodings need ``--encoding``.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    lines = sample.split(b"\n")
    if len(sample) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle of a character
    foreign = [line for line in lines if not line.isascii()]
    for encoding in ("utf-8", "gb18030"):
        if 2 * _failing(foreign, encoding) <= len(foreign):
            return encoding
    raise InvalidInput("cannot tell the file's encoding; give it with --encoding")


def _failing(lines: list[bytes], encoding: str) -> int:
    failed = 0
    for line in lines:
        try:
            line.decode(encoding)
        except UnicodeDecodeError:
            failed += 1
    return failed


def _csv(path: Path, encoding: str | None, mapping: dict[str, str]) -> Source:
    raw = path.open("rb")
    sample = raw.read(SAMPLE_BYTES)
    raw.seek(0)
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raw.close()
            raise InvalidInput(f"unknown encoding {encoding!r}") from None
    chosen = encoding or detect_encoding(sample)
    text = sample.decode(chosen, errors="ignore")
    try:
        # The sniffer's quote search is quadratic in a line's length: 64 KB of `,"` took
        # 18 s of CPU, 4 KB takes 0.08 s. A header and a few rows fit in 4 KB.
        prefix = "\n".join(text.splitlines()[:20])[:SNIFF_CHARS]
        dialect = csv.Sniffer().sniff(prefix or ",", DELIMITERS)
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    handle = io.TextIOWrapper(raw, encoding=chosen, errors="surrogateescape", newline="")
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{path.name} is empty") from None
    columns = canonical_columns(header, mapping)

    def records() -> Iterator[Record]:
        try:
            line = reader.line_num + 1
            for fields in reader:
                start, line = line, reader.line_num + 1
                if not "".join(fields).strip():
                    continue
                if UNDECODABLE.search("".join(fields)):
                    yield Record(start, None, f"bytes that are not valid {chosen}")
                elif len(fields) != len(columns):
                    yield Record(
                        start, None, f"expected {len(columns)} fields, found {len(fields)}"
                    )
                else:
                    yield Record(start, dict(zip(columns, fields, strict=True)))
        finally:
            handle.close()

    label = "tab" if delimiter == "\t" else repr(delimiter)
    return Source(columns, records(), path.stat().st_size, f"CSV, {chosen}, {label}-delimited", raw)


def _jsonl(path: Path, mapping: dict[str, str], used: frozenset[str]) -> Source:
    raw = path.open("rb")
    first = raw.readline()
    raw.seek(0)
    try:
        header = json.loads(first) if first.strip() else {}
    except (ValueError, RecursionError):  # bad JSON or bytes, a 5,000-digit integer; too deep
        header = None
    if not isinstance(header, dict):
        raw.close()
        raise InvalidInput(f"{path.name}: line 1 is not a JSON object")
    keys = list(header)
    columns = canonical_columns(keys, mapping)
    renames = dict(zip([k.strip().lower() for k in keys], columns, strict=True))

    def records() -> Iterator[Record]:
        with raw:
            for number, line in enumerate(raw, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except RecursionError:
                    yield Record(number, None, "not readable: JSON nested too deep")
                    continue
                except ValueError as exc:  # not JSON, not UTF-8, an integer over 4,300 digits
                    yield Record(number, None, f"not valid JSON: {str(exc)[:80]}")
                    continue
                if not isinstance(item, dict):
                    yield Record(number, None, "not a JSON object")
                    continue
                values = _texts(
                    {renames.get(k.strip().lower(), k.strip().lower()): v for k, v in item.items()},
                    used,
                )
                yield Record(number, *values)

    return Source(columns, records(), path.stat().st_size, "JSON Lines", raw)


def _parquet(path: Path, mapping: dict[str, str], used: frozenset[str]) -> Source:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InvalidInput(f"{path.name} is not a readable Parquet file: {exc}") from None
    names = parquet.schema_arrow.names
    columns = canonical_columns(names, mapping)

    def records() -> Iterator[Record]:
        """Row group by row group: a corrupt page costs the rows of its group from there
        on, each rejected with its number, and the other groups still land."""
        number = 0
        for group in range(parquet.num_row_groups):
            end = number + parquet.metadata.row_group(group).num_rows
            try:
                for batch in parquet.iter_batches(batch_size=10_000, row_groups=[group]):
                    for item in batch.to_pylist():
                        number += 1
                        renamed = {c: item[n] for n, c in zip(names, columns, strict=True)}
                        yield Record(number, *_texts(renamed, used))
            except Exception as exc:
                reason = f"row group {group + 1} is not readable: {str(exc)[:80]}"
                while number < end:
                    number += 1
                    yield Record(number, None, reason)

    total = parquet.metadata.num_rows
    return Source(columns, records(), total, f"Parquet, {total} rows")


def _texts(
    item: dict[str, object], used: frozenset[str]
) -> tuple[dict[str, str] | None, str | None]:
    """The columns we use, as text; a nested value in one of them makes the record
    unreadable. Other columns are left out, whatever their type."""
    values: dict[str, str] = {}
    for key, value in item.items():
        if key not in used:
            continue
        if value is None:
            values[key] = ""
        elif isinstance(value, (str, int, float, bool)):
            values[key] = str(value)
        else:
            return None, f"field {key!r} is not a plain value"
    return values, None
