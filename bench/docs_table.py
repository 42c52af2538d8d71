"""Benchmarks write their tables into the docs between two HTML comment markers."""
from __future__ import annotations

from pathlib import Path


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
