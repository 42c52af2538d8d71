"""Validation of raw Kafka values: every rejection reason, never an exception."""
import json
import random
from datetime import datetime, timezone

import pytest

from marketpulse.schemas import RawEvent
from marketpulse.wire import Rejection
from stream.validate import REASONS, check_record, validate_record

GOOD = {"id": "n-1", "source": "news", "source_name": "Reuters", "published_at": "2024-05-01T12:00:00Z",
        "text": "Apple beats estimates", "url": "https://example.com/a"}


def enc(obj) -> bytes:
    return json.dumps(obj).encode()


def reason(value: bytes, limit: int = 1000) -> str:
    out = validate_record(value, limit)
    assert isinstance(out, Rejection), out
    assert out.reason in REASONS and out.detail
    return out.reason


def test_valid_record_becomes_raw_event():
    ev = validate_record(enc(GOOD), 1000)
    assert isinstance(ev, RawEvent) and ev.id == "n-1"
    assert ev.published_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_unknown_top_level_keys_are_dropped_not_rejected():
    res = check_record(enc({**GOOD, "sentiment_hint": "neg", "x": 1}), 1000)
    assert res.ok and res.dropped_fields == ("sentiment_hint", "x")
    assert isinstance(validate_record(enc({**GOOD, "x": 1}), 1000), RawEvent)


@pytest.mark.parametrize("value, expected", [
    (b"\xff\xfe{}", "not_utf8"),
    (b'{"id": "x"\x00}', "nul_bytes"),
    (enc({**GOOD, "text": "bad\u0000text"}), "nul_bytes"),
    (b"Apple beats estimates", "not_json"),
    (b"", "not_json"),
    (b'{"id": 1,', "not_json"),
    (b"[1, 2]", "not_object"),
    (b'"just a string"', "not_object"),
    (enc({k: v for k, v in GOOD.items() if k != "source_name"}), "schema"),
    (enc({**GOOD, "source": "blog"}), "schema"),
    (enc({**GOOD, "published_at": "yesterday"}), "schema"),
    (enc({**GOOD, "text": "   \n"}), "empty_text"),
    (enc({**GOOD, "text": "x" * 1001}), "oversize"),
    (enc({**GOOD, "id": "é" * 254}), "schema"),  # 508 UTF-8 bytes: its Elasticsearch _id would pass 512
    (enc({**GOOD, "id": "\U0001F680" * 200}), "schema"),
    (b"[" * 100_000, "oversize"),
])
def test_rejection_reasons(value, expected):
    assert reason(value) == expected


def test_schema_detail_names_fields_without_echoing_values():
    out = validate_record(enc({**GOOD, "source": "blog-secret", "published_at": None}), 1000)
    assert isinstance(out, Rejection) and out.reason == "schema"
    assert "source" in out.detail and "published_at" in out.detail
    assert "blog-secret" not in out.detail


def test_never_raises_on_arbitrary_bytes():
    rng = random.Random(0)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(64))) for _ in range(300)]
    samples += [b"[" * 5000 + b"]" * 5000, b'{"text": ' + b"[" * 5000 + b"}", None]
    for value in samples:
        assert isinstance(validate_record(value, 1000), (RawEvent, Rejection))
