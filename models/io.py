"""Row files for `marketpulse classify`: CSV/TSV, JSONL and Parquet, from a path or stdin ("-") and to
a path or stdout, read and written in chunks so memory does not grow with the file.

Every input row keeps the 1-based number of the file line it starts on (CSV with a header: the first
data row is line 2; JSONL: line 1; Parquet has no lines, so its 1-based row number), which is what
error rows report.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from marketpulse.text import clean_optional, clean_text, model_text

STDIO = "-"


class InputError(ValueError):
    pass


class NoRows(InputError):
    """The input has no data rows (empty file, header only, blank lines only)."""


class DataFormat(str, Enum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"
    parquet = "parquet"


EXTENSIONS = {".csv": DataFormat.csv, ".tsv": DataFormat.tsv, ".jsonl": DataFormat.jsonl,
              ".ndjson": DataFormat.jsonl, ".json": DataFormat.jsonl, ".parquet": DataFormat.parquet,
              ".pq": DataFormat.parquet}


def resolve_format(path: str, given: DataFormat | str | None, option: str) -> DataFormat:
    """``given`` if set, else from the extension; stdin/stdout default to JSONL."""
    if given:
        return DataFormat(given)
    if path == STDIO:
        return DataFormat.jsonl
    ext = Path(path).suffix.lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    raise InputError(f"{path}: cannot tell the format from {ext or 'a name without extension'!r}; "
                     f"use {option} {'|'.join(f.value for f in DataFormat)}")


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIO else str(path)


# -- what the classifier sees --------------------------------------------------------------------
def model_input(text: str, title: str | None = None) -> str:
    """A raw text (and optional title) cleaned and joined exactly as the stream worker does before
    classifying (``clean_text`` + ``model_text``: markup, entities and URLs removed, title first), so
    offline labels match the live pipeline's."""
    return model_text(clean_text(text), clean_optional(title))


def row_problem(text: Any) -> str | None:
    """Why a row's text cannot be classified, or None if it can."""
    if text is None:
        return "missing text"
    if not isinstance(text, str):
        return f"text is not a string ({type(text).__name__})"
    if not text.strip():
        return "empty or whitespace-only text"
    return None


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Columns:
    text: str = "text"
    id: str | None = None
    title: str | None = None


class Row(NamedTuple):
    line: int  # 1-based line the row starts on (Parquet: 1-based row number)
    text: Any
    id: Any = None
    title: Any = None
    problem: str | None = None  # the line itself could not be read (invalid JSON, not an object, ...)


class RowSource:
    """One input, opened: header/schema problems raise InputError here, before any model is loaded.
    ``chunks(n)`` yields lists of at most n rows (NoRows if there is none); ``position()``/``total`` feed a progress bar (bytes
    for text formats, rows for Parquet; total is None for stdin)."""

    def __init__(self, path: str, fmt: DataFormat, columns: Columns = Columns()):
        self.path, self.format, self.columns = path, DataFormat(fmt), columns
        self.name = display_name(path)
        self.unit = "row" if self.format is DataFormat.parquet else "line"
        self.total: int | None = None
        self.id_type = None  # Arrow type of the id column when the input is Parquet
        self._raw = self._text = self._parquet = None
        self._rows_read = 0
        self._jsonl_line = 0  # lines read so far, blank ones included
        self._text_fields_seen = 0
        if path != STDIO:
            p = Path(path)
            if not p.exists():
                raise InputError(f"file {path!r} does not exist")
            if p.is_dir():
                raise InputError(f"{path!r} is a directory")
        if self.format is DataFormat.parquet:
            self._open_parquet()
        else:
            self._open_text()

    def __enter__(self) -> "RowSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._text is not None and self.path == STDIO:
            self._text.detach()  # leave the process's stdin open
        elif self._text is not None:
            self._text.close()
        self._text = self._raw = None
        if self._parquet is not None and hasattr(self._parquet, "close"):
            self._parquet.close()
            self._parquet = None

    def position(self) -> int:
        if self.format is DataFormat.parquet or self._raw is None:
            return self._rows_read
        try:
            return self._raw.tell()  # bytes handed to the decoder so far: within one buffer of exact
        except (OSError, ValueError):
            return 0

    def chunks(self, size: int) -> Iterator[list[Row]]:
        batch: list[Row] = []
        first = True
        for row in self._rows(size):
            batch.append(row)
            self._rows_read += 1
            if len(batch) >= size:
                if first:
                    self._check_first_chunk(batch)
                    first = False
                yield batch
                batch = []
        if first and not batch:
            raise NoRows(f"{self.name}: no rows")
        if batch:
            if first:
                self._check_first_chunk(batch)
            yield batch

    # -- text formats --
    def _open_text(self) -> None:
        if self.path == STDIO:
            raw = getattr(sys.stdin, "buffer", None)
            if raw is None:  # a text-only stdin (some embedders replace it): read it as it is
                raw = io.BytesIO(sys.stdin.read().encode("utf-8"))
        else:
            raw = open(self.path, "rb")
            self.total = Path(self.path).stat().st_size or None
        self._raw = raw
        # newline="" lets the csv module see quoted line breaks; utf-8-sig drops a spreadsheet's BOM.
        self._text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        if self.format in (DataFormat.csv, DataFormat.tsv):
            self._reader = csv.reader(self._text, delimiter="\t" if self.format is DataFormat.tsv else ",")
            header = self._next(self._reader)
            while header == []:  # csv yields [] for blank lines
                header = self._next(self._reader)
            if header is None:
                raise NoRows(f"{self.name}: no rows")
            self._index = {}
            for c in (self.columns.text, self.columns.id, self.columns.title):
                if c is None:
                    continue
                if c not in header:
                    raise InputError(f"{self.name}: no {c!r} column (columns: {', '.join(header)})")
                self._index[c] = header.index(c)

    def _next(self, it):
        """The next record or line, None at the end; decoding and CSV syntax errors become
        InputErrors naming the line."""
        try:
            return next(it)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise InputError(f"{self.name}: not UTF-8 text (somewhere after line {self._line_hint()})") from None
        except csv.Error as exc:
            raise InputError(f"{self.name}:{self._line_hint()}: {exc}") from None

    def _line_hint(self) -> int:
        reader = getattr(self, "_reader", None)
        return reader.line_num if reader is not None else self._jsonl_line

    def _rows(self, size: int) -> Iterator[Row]:
        if self.format is DataFormat.parquet:
            yield from self._parquet_rows(size)
        elif self.format is DataFormat.jsonl:
            yield from self._jsonl_rows()
        else:
            yield from self._csv_rows()

    def _csv_rows(self) -> Iterator[Row]:
        c, index = self.columns, self._index
        get = lambda rec, col: rec[index[col]] if col is not None and index[col] < len(rec) else None  # noqa: E731
        while True:
            start = self._reader.line_num + 1  # a quoted field may span lines: report where the row starts
            rec = self._next(self._reader)
            if rec is None:
                return
            if not rec:
                continue
            yield Row(start, get(rec, c.text), get(rec, c.id), get(rec, c.title))

    def _jsonl_rows(self) -> Iterator[Row]:
        c = self.columns
        lines = iter(self._text)
        while (line := self._next(lines)) is not None:
            self._jsonl_line += 1
            n = self._jsonl_line
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Row(n, None, problem=f"invalid JSON ({exc.msg})")
                continue
            if not isinstance(obj, dict):
                yield Row(n, None, problem="not a JSON object")
                continue
            ident = obj.get(c.id) if c.id else None
            title = obj.get(c.title) if c.title else None
            if c.text not in obj:
                yield Row(n, None, ident, title, problem=f"no {c.text!r} field")
                continue
            self._text_fields_seen += 1
            yield Row(n, obj[c.text], ident, title)

    def _check_first_chunk(self, batch: list[Row]) -> None:
        # A JSONL file has no header to check, so the first chunk stands in for it: when not one of
        # its rows has the text field, the file (or --text-column, or the format) is wrong and the
        # run stops before loading the model instead of writing an error row per line.
        if self.format is DataFormat.jsonl and not self._text_fields_seen:
            hint = " (stdin is read as JSONL unless --format says otherwise)" if self.path == STDIO else ""
            raise InputError(f"{self.name}: no {self.columns.text!r} field in the first {len(batch)} rows{hint}")

    # -- Parquet --
    def _open_parquet(self) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise InputError("Parquet needs pyarrow (pip install pyarrow)") from None
        # Parquet keeps its index at the end of the file, so stdin has to be read whole first.
        src = io.BytesIO(sys.stdin.buffer.read()) if self.path == STDIO else self.path
        try:
            self._parquet = pq.ParquetFile(src)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.name}: not a Parquet file ({exc})") from None
        schema = self._parquet.schema_arrow
        for c in (self.columns.text, self.columns.id, self.columns.title):
            if c is not None and c not in schema.names:
                raise InputError(f"{self.name}: no {c!r} column (columns: {', '.join(schema.names)})")
        if self.columns.id is not None:
            self.id_type = schema.field(self.columns.id).type
        self.total = self._parquet.metadata.num_rows or None

    def _parquet_rows(self, size: int) -> Iterator[Row]:
        c = self.columns
        wanted = list(dict.fromkeys(x for x in (c.text, c.id, c.title) if x is not None))
        n = 0
        for batch in self._parquet.iter_batches(batch_size=size, columns=wanted):
            cols = batch.to_pydict()
            none = [None] * batch.num_rows
            for text, ident, title in zip(cols[c.text], cols[c.id] if c.id else none,
                                          cols[c.title] if c.title else none):
                n += 1
                yield Row(n, text, ident, title)


def open_rows(path: str, fmt: DataFormat, columns: Columns = Columns()) -> RowSource:
    return RowSource(str(path), fmt, columns)


# -- writing -------------------------------------------------------------------------------------
def csv_columns(sentiment_labels, with_id: bool, explain: bool) -> list[str]:
    """CSV has no nesting: one column per sentiment probability and only the top topic's score
    (JSONL and Parquet keep ``sentiment_scores`` and the top-3 ``topic_scores``)."""
    return ((["id"] if with_id else []) + ["sentiment"] + [f"sentiment_score_{l}" for l in sentiment_labels]
            + ["topic", "topic_score", "model_version"] + (["explanation"] if explain else []) + ["line", "error"])


def flatten(record: dict, columns: list[str]) -> list:
    flat = dict(record)
    for label, score in record.get("sentiment_scores", {}).items():
        flat[f"sentiment_score_{label}"] = score
    if record.get("topic_scores"):
        flat["topic_score"] = record["topic_scores"][0]["score"]
    if "explanation" in record:
        flat["explanation"] = " ".join(record["explanation"])  # words come from str.split: no spaces inside
    return ["" if flat.get(c) is None else flat.get(c) for c in columns]


def parquet_schema(sentiment_labels, with_id: bool, explain: bool, id_type=None):
    import pyarrow as pa

    fields = [("id", id_type or pa.string())] if with_id else []
    fields += [("sentiment", pa.string()),
               ("sentiment_scores", pa.struct([(l, pa.float64()) for l in sentiment_labels])),
               ("topic", pa.string()),
               ("topic_scores", pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))),
               ("model_version", pa.string())]
    if explain:
        fields.append(("explanation", pa.list_(pa.string())))
    fields += [("line", pa.int64()), ("error", pa.string())]
    return pa.schema(fields)


class RecordWriter:
    """Writes lists of output records as they come. A file is written under ``<name>.tmp`` and renamed
    by ``close()``, so a run that fails half-way never leaves a complete-looking output behind."""

    def __init__(self, path: str, fmt: DataFormat, sentiment_labels=("negative", "neutral", "positive"),
                 with_id: bool = False, explain: bool = False, id_type=None):
        self.path, self.format = str(path), DataFormat(fmt)
        self.with_id = with_id
        self.rows = 0
        self._to_stdout = self.path == STDIO
        binary = self.format is DataFormat.parquet
        if self._to_stdout:
            self._tmp = None
            self._fh = sys.stdout.buffer if binary else sys.stdout
        else:
            target = Path(self.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = target.with_name(target.name + ".tmp")
            self._fh = open(self._tmp, "wb") if binary else open(self._tmp, "w", encoding="utf-8", newline="")
        if self.format is DataFormat.parquet:
            import pyarrow.parquet as pq

            self._schema = parquet_schema(sentiment_labels, with_id, explain, id_type)
            self._stringify_id = id_type is None
            self._pq = pq.ParquetWriter(self._fh, self._schema)
        elif self.format in (DataFormat.csv, DataFormat.tsv):
            self._columns = csv_columns(sentiment_labels, with_id, explain)
            self._csv = csv.writer(self._fh, delimiter="\t" if self.format is DataFormat.tsv else ",")
            self._csv.writerow(self._columns)

    def write(self, records: list[dict]) -> None:
        if self.format is DataFormat.parquet:
            import pyarrow as pa

            if self.with_id and self._stringify_id:  # ids from CSV/JSONL: one column type for all rows
                records = [{**r, "id": None if r.get("id") is None else str(r["id"])} for r in records]
            self._pq.write_table(pa.Table.from_pylist(records, schema=self._schema))
        elif self.format is DataFormat.jsonl:
            self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        else:
            self._csv.writerows(flatten(r, self._columns) for r in records)
        self._fh.flush()  # a reader at the other end of a pipe gets each chunk as soon as it is done
        self.rows += len(records)

    def close(self) -> None:
        if self.format is DataFormat.parquet:
            self._pq.close()
        if self._to_stdout:
            self._fh.flush()
            return
        if not self._fh.closed:
            self._fh.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        if self._to_stdout:
            return
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)
