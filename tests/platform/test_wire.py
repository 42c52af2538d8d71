"""The wire contract: every record kind round-trips, carries its schema header, and a reader
accepts newer minor versions (a newer worker beside an older sink) but refuses another major."""
import base64
import json
from datetime import datetime, timezone

import pytest

from marketpulse import wire
from marketpulse.schemas import LabeledEvent, RawEvent
from marketpulse.wire import InRecord, Rejection, WireError, deadletter_record

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def raw(**kw) -> RawEvent:
    base = dict(id="n-1", source="news", source_name="Reuters", published_at=T0, text="Apple beats estimates",
                url="https://example.com/a")
    return RawEvent(**{**base, **kw})


def labeled(**kw) -> LabeledEvent:
    return LabeledEvent(**raw().model_dump(), sentiment="negative",
                        sentiment_scores={"negative": 0.9, "neutral": 0.05, "positive": 0.05}, topic="Earnings",
                        topic_scores=[{"label": "Earnings", "score": 0.8}], model_version="m1", processed_at=T0, **kw)


def received(out: wire.OutRecord, **changes) -> InRecord:
    rec = InRecord(out.value, out.key, out.topic, 0, 0, out.headers)
    return InRecord(**{**rec.__dict__, **changes})


def header(rec) -> str:
    return dict(rec.headers)[wire.SCHEMA_HEADER].decode()


def test_a_labeled_event_round_trips_with_its_doc_id_as_key_and_a_schema_header():
    ev = labeled()
    out = wire.encode_labeled(ev, "events")
    assert out.key == b"news:n-1" == ev.doc_id.encode()
    assert header(out) == "labeled-event/1.0"
    assert wire.decode_labeled(received(out)) == ev


def test_a_raw_event_is_keyed_by_its_id_and_leaves_out_empty_fields():
    out = wire.encode_raw(raw(), "raw.news")
    assert out.key == b"n-1" and header(out) == "raw-event/1.0"
    assert "author" not in json.loads(out.value)
    assert wire.decode("raw-event", out.value, out.headers) == raw()


def test_an_alert_document_carries_when_it_was_fired_and_decodes_back_to_the_alert():
    from consumers.alerting.alert import build_alert

    alert = build_alert(key="ticker:AAPL", incident_start=T0.timestamp(), window_end=T0.timestamp() + 60,
                        observed=12, expected=2, score=5, severity="warning", status="opened", contributors=[])
    doc = wire.alert_document(alert, fired_at=T0)
    assert doc["fired_at"] == T0.isoformat() and doc["id"] == alert.id
    out = wire.encode_alert(doc, "alerts")
    assert out.key == alert.id.encode() and header(out) == "alert/1.0"
    assert wire.decode_alert(received(out)) == alert


def test_records_without_a_header_are_read_as_version_1_0():
    out = wire.encode_labeled(labeled(), "events")
    assert wire.decode_labeled(received(out, headers=())) == labeled()


def test_a_newer_minor_version_with_fields_this_reader_does_not_know_still_decodes():
    # A worker one minor version ahead adds an optional field; an older sink keeps what it knows.
    body = {**json.loads(wire.encode_labeled(labeled(), "events").value), "emotion": "fear"}
    rec = InRecord(json.dumps(body).encode(), b"news:n-1", "events", 0, 0,
                   ((wire.SCHEMA_HEADER, b"labeled-event/1.7"),))
    assert wire.decode_labeled(rec) == labeled()


def test_the_same_unknown_field_at_the_reader_s_own_version_is_a_schema_error():
    body = {**json.loads(wire.encode_labeled(labeled(), "events").value), "emotion": "fear"}
    with pytest.raises(WireError) as err:
        wire.decode_labeled(InRecord(json.dumps(body).encode(), b"k", "events", 0, 0, ()))
    assert err.value.rejection.reason == "schema" and "emotion" in err.value.rejection.detail


@pytest.mark.parametrize("headers, value, reason", [
    (((wire.SCHEMA_HEADER, b"labeled-event/2.0"),), None, "schema_version"),
    (((wire.SCHEMA_HEADER, b"labeled-event/x"),), None, "schema_version"),
    (((wire.SCHEMA_HEADER, b"alert/1.0"),), None, "wrong_kind"),
    ((), b"\xff\xfe", "not_json"),
    ((), b"[1, 2]", "not_object"),
    ((), b'{"id": "x"}', "schema"),
], ids=["next-major", "unreadable-version", "wrong-kind", "not-utf8", "array", "missing-fields"])
def test_records_that_are_not_labeled_events_fail_with_a_reason(headers, value, reason):
    value = value if value is not None else wire.encode_labeled(labeled(), "events").value
    with pytest.raises(WireError) as err:
        wire.decode_labeled(InRecord(value, b"k", "events", 0, 0, headers))
    assert err.value.rejection.reason == reason


def test_a_dead_letter_names_stage_reason_and_source_and_keeps_the_key():
    rec = InRecord(b"not json", b"key-1", "events", 2, 41)
    out = wire.encode_deadletter(rec, Rejection("not_json", "nope"), "es_sink", "deadletter")
    body = json.loads(out.value)
    assert out.topic == "deadletter" and out.key == b"key-1" and header(out) == "dead-letter/1.0"
    assert (body["stage"], body["key"], body["reason"], body["original"]) == ("es_sink", "key-1", "not_json", "not json")
    assert body["source"] == {"topic": "events", "partition": 2, "offset": 41}


def test_deadletter_keeps_utf8_original_as_text():
    rej = Rejection("not_json", "Expecting value at line 1 column 1")
    dl = deadletter_record(b"hello \xc3\xa9", rej, "marketpulse.raw.news", 3, 42, datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert dl == {
        "reason": "not_json", "detail": "Expecting value at line 1 column 1",
        "source": {"topic": "marketpulse.raw.news", "partition": 3, "offset": 42},
        "rejected_at": "2024-05-01T00:00:00Z", "original_encoding": "utf-8", "original_size": 8,
        "original": "hello é",
    }
    json.dumps(dl)


def test_deadletter_base64_for_invalid_utf8():
    original = b"\xff\xfe\x00binary"
    dl = deadletter_record(original, Rejection("not_utf8", "x"), "t", 0, 1, 1714521600.0)
    assert dl["original_encoding"] == "base64"
    assert base64.b64decode(dl["original"]) == original
    assert dl["rejected_at"] == "2024-05-01T00:00:00Z"


def test_a_huge_binary_key_is_replaced_by_its_hash_so_the_dead_letter_still_fits_a_kafka_message():
    key = bytes(range(256)) * 1600  # 400 kB, not UTF-8
    rec = InRecord(b"\xff" * 400_000, key, "raw", 0, 9)
    out = wire.encode_deadletter(rec, Rejection("oversize", "record is 400000 bytes"), "worker", "deadletter")
    body = json.loads(out.value)
    assert len(out.key) + len(out.value) < 600_000  # Kafka's default limit is 1,000,000
    assert out.key.startswith(b"sha256:") and body["key"] is None and body["key_size"] == len(key)
    assert body["original_truncated"] and body["original_size"] == 400_000
