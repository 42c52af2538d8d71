"""Benchmarks write their results to JSON and their tables into the docs between two HTML comment markers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def replace_table(doc: Path, begin: str, end: str, table: str) -> bool:
    """Put ``table`` between the ``begin`` and ``end`` markers of ``doc``; False if either is missing."""
    if not doc.exists():
        return False
    text = doc.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
    return True


def publish(result: dict[str, Any], results: Path, table: str, doc: Path | None, begin: str, end: str,
            indent: int = 2) -> None:
    """Write ``result`` as JSON to ``results``, ``table`` into ``doc`` (unless None), and print it."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=indent) + "\n")
    if doc is not None:
        replace_table(doc, begin, end, table)
    print(table)
