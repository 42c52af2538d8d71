"""Reading texts for `marketpulse classify` (CSV with a ``text`` column, or JSONL with a ``text``
field) and writing one JSON object per row."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Iterator


class InputError(ValueError):
    pass


def read_texts(path: Path) -> list[str | None]:
    """Texts in file order. A row whose text is missing or not a string yields None (the caller
    reports it per row); a file without a text column/field at all is an InputError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return list(_read_jsonl(path))
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    raise InputError(f"{path}: unsupported input format {suffix!r} (use .csv or .jsonl)")


def _read_csv(path: Path, delimiter: str) -> list[str | None]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise InputError(f"{path}: no 'text' column (columns: {reader.fieldnames})")
        return [row.get("text") for row in reader]


def _read_jsonl(path: Path) -> Iterator[str | None]:
    rows = seen_text = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line")
            rows += 1
            seen_text += "text" in obj
            text = obj.get("text")
            yield text if isinstance(text, str) else None
    if rows and not seen_text:
        raise InputError(f"{path}: no line has a 'text' field")


def row_problem(text: str | None) -> str | None:
    """Why a row cannot be classified, or None if it can."""
    if text is None:
        return "missing text"
    if not text.strip():
        return "empty or whitespace-only text"
    return None


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n
