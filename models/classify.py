"""Streaming file classification behind `marketpulse classify`: read a chunk of rows, classify it,
write it, repeat, so memory stays flat however large the input is."""
from __future__ import annotations

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from marketpulse.settings import ModelSettings
from models.io import (STDIO, Columns, DataFormat, RecordWriter, Row, model_input, open_rows,
                       resolve_format, row_problem)

CHUNK_ROWS = 512  # rows per read/classify/write step: large enough to keep batches full, small in memory


def usable_rows(rows: list[Row], with_id: bool = False, unit: str = "line") -> tuple[list[dict | None], list[int], list[str]]:
    """(records, good, texts): ``texts[j]`` is row ``good[j]`` cleaned as the stream worker cleans it;
    every other row already has its error record (``{"line": n, "error": "line n: reason"}``, after
    its ``id`` with ``with_id``) in ``records``, where the good rows' places are None."""
    out: list[dict | None] = [None] * len(rows)
    good, texts = [], []
    for i, r in enumerate(rows):
        reason = r.problem or row_problem(r.text)
        if reason is None and r.title is not None and not isinstance(r.title, str):
            reason = f"title is not a string ({type(r.title).__name__})"
        if reason is None:
            text = model_input(r.text, r.title)
            if text.strip():
                good.append(i)
                texts.append(text)
                continue
            reason = "no text left after removing markup and URLs"
        out[i] = {**({"id": r.id} if with_id else {}), "line": r.line, "error": f"{unit} {r.line}: {reason}"}
    return out, good, texts


@dataclass
class Tally:
    """Counts over the chunks of one run: rows, failed rows, the first error, and the seconds spent
    in the model (reading and writing left out of ``texts_per_s``)."""

    rows: int = 0
    errors: int = 0
    first_error: str | None = None
    busy_s: float = 0.0

    def add(self, records: list[dict], seconds: float) -> None:
        self.rows += len(records)
        bad = [r["error"] for r in records if "error" in r]
        self.errors += len(bad)
        self.first_error = self.first_error or (bad[0] if bad else None)
        self.busy_s += seconds

    def counts(self) -> dict:
        return {"rows": self.rows, "errors": self.errors, "first_error": self.first_error,
                "texts_per_s": (self.rows - self.errors) / self.busy_s if self.busy_s > 0 else 0.0}


def classify_rows(clf, rows: list[Row], explain: bool = False, with_id: bool = False,
                  unit: str = "line") -> list[dict]:
    """One output record per row, same order. Good rows: ``Prediction.to_dict()`` (the shape of
    ``LabeledEvent``'s scores); unusable rows: ``{"line": n, "error": "line n: reason"}``. With
    ``with_id`` every record starts with the row's ``id``."""
    out, good, texts = usable_rows(rows, with_id, unit)
    if texts:
        for i, p in zip(good, clf.predict(texts, explain=explain)):
            out[i] = {**({"id": rows[i].id} if with_id else {}), **p.to_dict()}
    return out  # type: ignore[return-value]


@contextmanager
def _progress(source, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (bytes of the file, or rows for Parquet); a no-op when disabled."""
    if not enabled:
        yield lambda rows: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    with Progress(TextColumn("classify"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("classify", total=source.total, rows=0)
        yield lambda rows: bar.update(task, completed=source.position(), rows=rows)


def classify_file(ms: ModelSettings, input_path: str, output_path: str, *,
                  input_format: DataFormat | str | None = None, output_format: DataFormat | str | None = None,
                  columns: Columns = Columns(), backend: str = "auto", batch_size: int | None = None,
                  explain: bool = False, chunk_size: int = CHUNK_ROWS, progress: bool = False) -> dict:
    """Classify ``input_path`` into ``output_path`` ("-": stdin/stdout) chunk by chunk.

    Formats come from the extensions unless given (stdin/stdout: JSONL). An input without rows raises
    ``NoRows`` and a bad header or schema ``InputError``, both before the model is loaded. Returns
    counts: rows, errors, first_error, backend, texts_per_s."""
    from models.classifier import Classifier

    in_fmt = resolve_format(str(input_path), input_format, "--format")
    out_fmt = resolve_format(str(output_path), output_format, "--output-format")
    with_id = columns.id is not None
    with open_rows(str(input_path), in_fmt, columns) as source:
        chunks = source.chunks(chunk_size)
        first = next(chunks)  # raises NoRows for an empty input: checked before the model loads
        clf = Classifier.from_settings(ms, backend=backend, batch_size=batch_size)
        writer = RecordWriter(str(output_path), out_fmt, clf.labels.sentiment, with_id=with_id,
                              explain=explain, id_type=source.id_type)
        tally = Tally()
        try:
            with _progress(source, progress) as advance:
                for chunk in itertools.chain([first], chunks):
                    t0 = time.perf_counter()
                    records = classify_rows(clf, chunk, explain=explain, with_id=with_id, unit=source.unit)
                    tally.add(records, time.perf_counter() - t0)
                    writer.write(records)
                    advance(tally.rows)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    return {**tally.counts(), "backend": clf.backend,
            "output": "<stdout>" if str(output_path) == STDIO else str(output_path)}
