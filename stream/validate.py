"""Validation of raw Kafka records: bytes in, a RawEvent or a Rejection out, never an exception.

Unknown top-level keys are dropped rather than rejected: producers can add fields ahead of the schema
without losing events; ``check_record`` reports what was dropped so the worker can log or count it.
Checks run cheapest first, and each failure maps to one short machine-readable ``reason``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from marketpulse.schemas import RawEvent
from marketpulse.wire import Rejection, schema_detail

REASONS = ("not_utf8", "nul_bytes", "oversize", "not_json", "not_object", "schema", "empty_text")
KNOWN_FIELDS = frozenset(RawEvent.model_fields)
# Envelope allowance on top of the text limit: other fields, JSON escaping (up to 6 bytes per char).
_BYTES_PER_CHAR = 6
_ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckResult:
    event: RawEvent | None
    rejection: Rejection | None
    dropped_fields: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.event is not None


def _has_nul(obj: Any) -> bool:
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_has_nul(v) for v in obj)
    return False


def check_object(obj: Any, max_text_chars: int) -> CheckResult:
    """Validate an already-decoded JSON value (also used by the file readers)."""
    if not isinstance(obj, dict):
        return CheckResult(None, Rejection("not_object", f"expected a JSON object, got {type(obj).__name__}"))
    dropped = tuple(sorted(str(k) for k in obj if k not in KNOWN_FIELDS))
    data = {k: v for k, v in obj.items() if k in KNOWN_FIELDS}
    if _has_nul(data):
        return CheckResult(None, Rejection("nul_bytes", "a string field contains NUL (\\u0000) characters"), dropped)
    text = data.get("text")
    if isinstance(text, str):
        if not text.strip():
            return CheckResult(None, Rejection("empty_text", "text is empty or whitespace"), dropped)
        if len(text) > max_text_chars:
            return CheckResult(
                None, Rejection("oversize", f"text has {len(text)} characters, limit is {max_text_chars}"), dropped
            )
    try:
        event = RawEvent.model_validate(data)
    except ValidationError as err:
        return CheckResult(None, Rejection("schema", schema_detail(err)), dropped)
    return CheckResult(event, None, dropped)


def check_record(value: bytes | bytearray | memoryview | None, max_text_chars: int) -> CheckResult:
    """Like ``validate_record`` but also says which unknown keys were dropped."""
    try:
        if value is None:
            return CheckResult(None, Rejection("not_json", "record has no value (tombstone)"))
        raw = bytes(value)
        if len(raw) > max_text_chars * _BYTES_PER_CHAR + _ENVELOPE_BYTES:
            # refuse before parsing: a huge payload should not cost a full JSON decode
            return CheckResult(None, Rejection("oversize", f"record is {len(raw)} bytes"))
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return CheckResult(None, Rejection("not_utf8", f"invalid UTF-8 at byte {e.start}: {e.reason}"))
        if "\x00" in s:  # JSON cannot carry a raw NUL anyway; say what is wrong rather than "not_json"
            return CheckResult(None, Rejection("nul_bytes", "record contains NUL bytes"))
        try:
            obj = json.loads(s)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else "nesting too deep"
            return CheckResult(None, Rejection("not_json", msg))
        return check_object(obj, max_text_chars)
    except Exception as e:  # noqa: BLE001 - the contract is "never raises"; a bug here must not stop the stream
        return CheckResult(None, Rejection("schema", f"unexpected validation error: {type(e).__name__}"))


def validate_record(value: bytes, max_text_chars: int) -> RawEvent | Rejection:
    """A RawEvent, or a Rejection saying why not. Never raises on any bytes input."""
    res = check_record(value, max_text_chars)
    return res.event if res.event is not None else res.rejection  # type: ignore[return-value]
