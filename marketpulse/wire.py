"""The wire contract: what marketpulse records look like on Kafka, encoded and decoded here only.

Every record a marketpulse process writes carries a schema header, ``marketpulse-schema:
<kind>/<major>.<minor>`` (kinds: raw-event, labeled-event, alert, dead-letter). Readers decode at
their edge, once, into the typed models of ``marketpulse.schemas`` and work on those from then on.

Versions: a minor version only adds optional fields, so a reader accepts any minor of its major
and ignores the fields it does not know yet (a newer worker and an older sink coexist during a
rolling upgrade); another major is refused with the reason ``schema_version`` (the record is
dead-lettered, not misread). Records without the header are taken as version 1.0: producers
outside marketpulse send raw events without it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from marketpulse.schemas import Alert, LabeledEvent, RawEvent, doc_id

SCHEMA_HEADER = "marketpulse-schema"
SCHEMA_MAJOR, SCHEMA_MINOR = 1, 0
KINDS = {"raw-event": RawEvent, "labeled-event": LabeledEvent, "alert": Alert}
Headers = tuple[tuple[str, bytes], ...]

_DETAIL_MAX = 1000
# Serialized size budget for a dead letter's copy of the original (Kafka's default message limit is 1 MB).
_ORIGINAL_MAX_JSON = 512 * 1024


@dataclass(frozen=True)
class InRecord:
    """A consumed Kafka record, independent of the client library that read it."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    headers: Headers = ()

    @classmethod
    def from_kafka(cls, r: Any) -> "InRecord":
        """From a kafka-python ConsumerRecord."""
        return cls(r.value, r.key, r.topic, r.partition, r.offset, tuple(r.headers or ()))


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
    headers: Headers = field(default=())


@dataclass(frozen=True)
class Rejection:
    """Why a record was not labeled or not stored: a short machine-readable reason and a detail
    for people (names fields, never echoes their values)."""

    reason: str
    detail: str


class WireError(ValueError):
    """A record that does not decode as the kind its reader expects."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.rejection = Rejection(reason, detail[:_DETAIL_MAX])


def schema_header(kind: str, major: int = SCHEMA_MAJOR, minor: int = SCHEMA_MINOR) -> tuple[str, bytes]:
    if kind not in KINDS and kind != "dead-letter":
        raise ValueError(f"unknown record kind {kind!r}")
    return SCHEMA_HEADER, f"{kind}/{major}.{minor}".encode()


# -- encode ---------------------------------------------------------------------------------------
def encode(kind: str, model: BaseModel, topic: str, key: str) -> OutRecord:
    return OutRecord(topic, key.encode(), model.model_dump_json(exclude_none=kind == "raw-event").encode(),
                     (schema_header(kind),))


def encode_raw(event: RawEvent, topic: str) -> OutRecord:
    return encode("raw-event", event, topic, event.id)


def encode_labeled(event: LabeledEvent, topic: str) -> OutRecord:
    return encode("labeled-event", event, topic, doc_id(event.source, event.id))


def alert_document(alert: Alert, fired_at: datetime) -> dict[str, Any]:
    """An alert as published (topic, index, webhooks): the model plus when it was fired."""
    return {**alert.model_dump(mode="json"), "fired_at": fired_at.isoformat()}


def encode_alert(document: dict[str, Any], topic: str) -> OutRecord:
    return OutRecord(topic, document["id"].encode(), json.dumps(document).encode(), (schema_header("alert"),))


# -- decode ---------------------------------------------------------------------------------------
def _version(headers: Headers, kind: str) -> tuple[int, int]:
    for name, value in headers:
        if name == SCHEMA_HEADER:
            text = bytes(value).decode("utf-8", "replace")
            got, _, ver = text.partition("/")
            if got != kind:
                raise WireError("wrong_kind", f"record is a {got!r}, expected a {kind!r}")
            major, _, minor = ver.partition(".")
            try:
                return int(major), int(minor or 0)
            except ValueError:
                raise WireError("schema_version", f"unreadable schema version {text!r}") from None
    return 1, 0


def decode(kind: str, value: bytes | None, headers: Headers = ()) -> Any:
    """The typed model of a record of ``kind``, or WireError with the reason it is not one."""
    major, minor = _version(headers, kind)
    if major != SCHEMA_MAJOR:
        raise WireError("schema_version", f"{kind} schema {major}.{minor} is not supported "
                                          f"(this reader knows {SCHEMA_MAJOR}.x)")
    if value is None:
        raise WireError("not_json", "record has no value (tombstone)")
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireError("not_json", f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX]) from None
    if not isinstance(obj, dict):
        raise WireError("not_object", f"expected a JSON object, got {type(obj).__name__}")
    model = KINDS[kind]
    if minor > SCHEMA_MINOR:
        # A newer minor only adds optional fields: keep what this reader knows.
        obj = {k: v for k, v in obj.items() if k in model.model_fields}
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        raise WireError("schema", schema_detail(err)) from None


def decode_labeled(record: InRecord) -> LabeledEvent:
    return decode("labeled-event", record.value, record.headers)


def decode_alert(record: InRecord) -> Alert:
    return decode("alert", record.value, record.headers)


def decode_alert_document(record: InRecord) -> dict[str, Any]:
    """An alert as published (``alert_document``): checked against the model, returned whole, so a
    webhook gets what the topic holds (``fired_at`` and fields this reader does not know too)."""
    decode_alert(record)
    return json.loads(record.value)  # decode() has read it as a JSON object already


def schema_detail(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(record)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)[:_DETAIL_MAX]


# -- dead letters ---------------------------------------------------------------------------------
def _iso(ts: datetime | float | int | None) -> str:
    if ts is None:
        dt = datetime.now(timezone.utc)
    elif isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    else:
        dt = datetime.fromtimestamp(float(ts), tz=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def deadletter_record(
    original: bytes | None,
    rejection: Rejection,
    topic: str,
    partition: int | None,
    offset: int | None,
    ts: datetime | float | int | None = None,
) -> dict[str, Any]:
    """JSON-ready dead-letter payload. ``ts`` is the rejection time (datetime or epoch seconds; default
    now). The original is kept verbatim so it can be fixed and replayed: as text when it is valid
    UTF-8, else base64."""
    data = bytes(original) if original is not None else b""
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    truncated = len(text) > _ORIGINAL_MAX_JSON // 6 and len(json.dumps(text)) > _ORIGINAL_MAX_JSON
    if truncated:
        # The dead letter must fit in one Kafka message, or sending it fails and stalls the partition.
        # Only huge or heavily escaped records get here; source.offset still points at the full one.
        head = data[: _ORIGINAL_MAX_JSON // 6]  # JSON escaping grows a character to at most 6 bytes
        if encoding == "utf-8":
            text = head.decode("utf-8", "ignore")  # at most a multi-byte character cut at the end
        else:
            text = base64.b64encode(head).decode("ascii")
    out = {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "rejected_at": _iso(ts),
        "original_encoding": encoding,
        "original_size": len(data),
        "original": text,
    }
    if truncated:
        out["original_truncated"] = True
    return out


# A dead letter keeps a record's key as it is up to this size; a longer one is replaced by its
# SHA-256, so a huge key cannot make the dead letter too large to send (which would lose the record).
MAX_DEADLETTER_KEY_BYTES = 256


def encode_deadletter(record: InRecord, rejection: Rejection, stage: str, topic: str) -> OutRecord:
    """The dead letter of ``record``: which stage refused it, why, and the original to fix and replay.
    Keyed like the original (a replay lands on the same partition) unless the key is huge."""
    key = record.key or b""
    body: dict[str, Any] = {"stage": stage}
    if len(key) > MAX_DEADLETTER_KEY_BYTES:
        digest = hashlib.sha256(key).hexdigest()
        body.update(key=None, key_sha256=digest, key_size=len(key))
        key = f"sha256:{digest}".encode()
    else:
        body["key"] = key.decode("utf-8", "replace") if key else None
    body.update(deadletter_record(record.value, rejection, record.topic, record.partition, record.offset))
    return OutRecord(topic, key, json.dumps(body).encode(), (schema_header("dead-letter"),))
