"""Input files for ``marketpulse produce``: JSONL, CSV and RSS 2.0 / Atom feeds -> RawEvents.

Every record comes back as a ``FileRecord``: a validated RawEvent, or a short reject reason (the same
codes as ``stream.validate`` plus ``bad_date``), so the producer can count sent vs rejected by reason.
Missing fields get defaults: ``id`` = ``stable_id(source, url, text)``, ``source`` = the given source,
``source_name`` = the feed title or file name, ``published_at`` = now. Dates may be ISO-8601 or
RFC 822 (as in RSS). Problems with the whole file (unknown extension, unparseable XML, a CSV without a
``text`` column) raise ``FileFormatError``.
"""
from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from marketpulse.schemas import RawEvent, Source, stable_id
from marketpulse.text import clean_optional, clean_text
from stream.validate import check_object

Format = Literal["jsonl", "csv", "xml"]
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv",
    ".xml": "xml", ".rss": "xml", ".atom": "xml",
}
DEFAULT_MAX_TEXT_CHARS = 20_000
_ATOM = "{http://www.w3.org/2005/Atom}"
_DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
_DC_DATE = "{http://purl.org/dc/elements/1.1/}date"
_CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
_MAX_ID = 256


class FileFormatError(ValueError):
    """The file as a whole cannot be read (unknown format, broken XML, missing CSV column)."""


@dataclass(frozen=True)
class FileRecord:
    line: int                      # JSONL/CSV: line number in the file; XML and JSON arrays: item number (1-based)
    event: RawEvent | None
    reason: str | None = None      # short code when rejected
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.event is not None


def detect_format(path: str | Path) -> Format:
    ext = Path(path).suffix.lower()
    try:
        return EXTENSIONS[ext]
    except KeyError:
        known = ", ".join(sorted(EXTENSIONS))
        raise FileFormatError(f"{path}: unknown input format {ext or '(no extension)'!r}; use one of {known}") from None


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 (``Z`` allowed) or RFC 822 (``Tue, 05 Mar 2024 14:30:00 GMT``); naive means UTC.
    None for anything unparseable."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            try:
                dt = parsedate_to_datetime(s)
            except (TypeError, ValueError, IndexError):
                return None
            if dt is None:
                return None
    else:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _finish(
    obj: dict[str, Any], position: int, source: Source, source_name: str, now: datetime, max_text_chars: int
) -> FileRecord:
    """Fill defaults and validate one record."""
    data = {k: v for k, v in obj.items() if v is not None and v != ""}
    data.setdefault("source", source)
    data.setdefault("source_name", source_name)
    pub = data.get("published_at")
    if pub is None:
        data["published_at"] = now
    elif isinstance(pub, str):
        parsed = parse_datetime(pub)
        if parsed is None:
            return FileRecord(position, None, "bad_date", f"published_at: cannot parse {pub[:60]!r}")
        data["published_at"] = parsed
    text = data.get("text")
    if "id" not in data and isinstance(text, str) and text.strip():
        url = data.get("url") if isinstance(data.get("url"), str) else None
        data["id"] = stable_id(str(data["source"]), url, text)
    res = check_object(data, max_text_chars)
    if res.event is None:
        assert res.rejection is not None
        return FileRecord(position, None, res.rejection.reason, res.rejection.detail)
    return FileRecord(position, res.event)


def read_jsonl(
    path: str | Path, source: Source = "news", *, source_name: str | None = None,
    now: datetime | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[FileRecord]:
    """One JSON object per line (blank lines skipped). A ``.json`` file holding one array works too."""
    p = Path(path)
    name = source_name or p.stem
    now = now or datetime.now(timezone.utc)
    with p.open("rb") as f:
        head = f.read(1024).lstrip()
    if head.startswith(b"["):
        try:
            items = json.loads(p.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FileFormatError(f"{p}: not a JSON array: {e}") from e
        for i, obj in enumerate(items, 1):
            if not isinstance(obj, dict):
                yield FileRecord(i, None, "not_object", f"expected an object, got {type(obj).__name__}")
            else:
                yield _finish(obj, i, source, name, now, max_text_chars)
        return
    with p.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            pos = lineno
            if not line.strip():
                continue
            try:
                s = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield FileRecord(pos, None, "not_utf8", f"invalid UTF-8 at byte {e.start}")
                continue
            try:
                obj = json.loads(s)
            except json.JSONDecodeError as e:
                yield FileRecord(pos, None, "not_json", f"{e.msg} at column {e.colno}")
                continue
            except RecursionError:  # one absurdly nested line must not end the whole file
                yield FileRecord(pos, None, "not_json", "nesting too deep")
                continue
            if not isinstance(obj, dict):
                yield FileRecord(pos, None, "not_object", f"expected an object, got {type(obj).__name__}")
                continue
            yield _finish(obj, pos, source, name, now, max_text_chars)


def read_csv(
    path: str | Path, source: Source = "news", *, source_name: str | None = None,
    now: datetime | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[FileRecord]:
    """Header row with RawEvent field names; ``text`` is required, empty cells count as missing,
    other columns are ignored."""
    p = Path(path)
    name = source_name or p.stem
    now = now or datetime.now(timezone.utc)
    with p.open(newline="", encoding="utf-8-sig", errors="strict") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        if "text" not in fields:
            raise FileFormatError(f"{p}: CSV needs a header row with a 'text' column (got {fields})")
        reader.fieldnames = fields
        # Fields may be as long as a text may be (the csv module stops at 131,072 characters);
        # a longer one is reported for its row and the file goes on.
        csv.field_size_limit(max(csv.field_size_limit(), max_text_chars * 2))
        try:
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    yield FileRecord(reader.line_num + 1, None, "oversize", f"CSV row: {e}")
                    continue
                obj = {k: v for k, v in row.items() if k is not None}
                yield _finish(obj, reader.line_num, source, name, now, max_text_chars)
        except UnicodeDecodeError as e:
            raise FileFormatError(f"{p}: not UTF-8 text: {e}") from e


def _child_text(el: ET.Element, *tags: str) -> str | None:
    for tag in tags:
        child = el.find(tag)
        if child is not None and child.text and child.text.strip():
            return child.text.strip()
    return None


def _atom_link(entry: ET.Element) -> str | None:
    links = entry.findall(f"{_ATOM}link")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    return links[0].get("href") if links and links[0].get("href") else None


def _feed_items(root: ET.Element) -> tuple[str | None, list[dict[str, Any]]]:
    """Feed title and items as RawEvent-like dicts (text still HTML; cleaned by the caller)."""
    items: list[dict[str, Any]] = []
    if root.tag == f"{_ATOM}feed":
        feed_title = _child_text(root, f"{_ATOM}title")
        for entry in root.findall(f"{_ATOM}entry"):
            author = entry.find(f"{_ATOM}author")
            items.append({
                "guid": _child_text(entry, f"{_ATOM}id"),
                "title": _child_text(entry, f"{_ATOM}title"),
                "text": _child_text(entry, f"{_ATOM}summary", f"{_ATOM}content"),
                "url": _atom_link(entry),
                "published_at": _child_text(entry, f"{_ATOM}published", f"{_ATOM}updated"),
                "author": _child_text(author, f"{_ATOM}name") if author is not None else None,
            })
        return feed_title, items
    channel = root.find("channel") if root.tag == "rss" else (root if root.tag == "channel" else None)
    if channel is None:
        raise FileFormatError(f"not an RSS 2.0 or Atom feed (root element <{root.tag}>)")
    feed_title = _child_text(channel, "title")
    for item in channel.findall("item"):
        items.append({
            "guid": _child_text(item, "guid"),
            "title": _child_text(item, "title"),
            "text": _child_text(item, "description", _CONTENT_ENCODED),
            "url": _child_text(item, "link"),
            "published_at": _child_text(item, "pubDate", _DC_DATE),
            "author": _child_text(item, _DC_CREATOR, "author"),
        })
    return feed_title, items


def read_feed(
    path: str | Path, source: Source = "news", *, source_name: str | None = None,
    now: datetime | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[FileRecord]:
    """RSS 2.0 or Atom: text = description/summary with HTML stripped (the title when there is none),
    title = item title, id = guid/entry id when short enough, else stable_id."""
    p = Path(path)
    now = now or datetime.now(timezone.utc)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise FileFormatError(f"{p}: not well-formed XML: {e}") from e
    try:
        feed_title, items = _feed_items(root)
    except FileFormatError as e:
        raise FileFormatError(f"{p}: {e}") from None
    name = source_name or clean_optional(feed_title) or p.stem
    for i, it in enumerate(items, 1):
        title = clean_optional(it.pop("title"))
        text = clean_text(it["text"]) if it["text"] else ""
        it["text"] = text or title
        it["title"] = title
        guid = it.pop("guid")
        if guid and len(guid) <= _MAX_ID:
            it["id"] = guid
        yield _finish(it, i, source, name[:200], now, max_text_chars)


def read_file(
    path: str | Path, source: Source = "news", *, source_name: str | None = None,
    now: datetime | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> Iterator[FileRecord]:
    """Any supported file, format from its extension. ``source`` is the default for records that do
    not carry their own."""
    readers = {"jsonl": read_jsonl, "csv": read_csv, "xml": read_feed}
    reader = readers[detect_format(path)]
    return reader(path, source, source_name=source_name, now=now, max_text_chars=max_text_chars)


read_records = read_file  # the name the producer CLI uses
