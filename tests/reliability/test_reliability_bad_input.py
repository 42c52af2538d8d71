"""Hostile and odd input against a running worker: every record comes out exactly once, either
labeled (and searchable) or dead-lettered with the reason stated here, and the worker keeps running.

The corpus is a table: kind -> (Kafka key, value, expected outcome). "labeled" records carry the id
they must be found under in Elasticsearch; dead letters are matched to their input by source offset.
"""
import json
import signal
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaProducer

from marketpulse.kafka_topics import ensure_topics
from tests.support import es_doc_count, read_topic, rebalance_log, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

LABELED = "labeled"
MAX_CHARS = 20_000  # the worker's default batch.max_text_chars


def event(kind: str, **fields) -> dict:
    base = {"id": f"odd-{kind}", "source": "news", "source_name": "odd-wire",
            "published_at": "2026-11-23T14:00:00Z", "text": f"Apple shares rise after strong results ({kind})"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def j(obj) -> bytes:
    """UTF-8 JSON as a producer would send it (non-ASCII characters raw, not \\u-escaped)."""
    return json.dumps(obj, ensure_ascii=False).encode()


def corpus() -> list[tuple[str, bytes | None, bytes | None, tuple[str, str]]]:
    """(kind, key, value, (outcome, reason-or-id)). Outcome is "labeled" with the doc id, or a dead
    letter reason."""
    rows = []

    def add(kind, value, outcome, key=None):
        rows.append((kind, key if key is not None else kind.encode(), value, outcome))

    ok = lambda kind: (LABELED, f"odd-{kind}")  # noqa: E731
    # -- not a JSON object at all
    add("plain_text", b"this is not json", ("dead", "not_json"))
    add("empty_value", b"", ("dead", "not_json"))
    add("tombstone", None, ("dead", "not_json"))
    add("truncated_json", j(event("truncated_json"))[:-7], ("dead", "not_json"))
    add("utf8_bom", b"\xef\xbb\xbf" + j(event("utf8_bom")), ("dead", "not_json"))
    add("deep_nesting", b"[" * 50_000 + b"]" * 50_000, ("dead", "not_json"))
    add("json_null", b"null", ("dead", "not_object"))
    add("json_array", j([event("json_array")]), ("dead", "not_object"))
    add("json_string", j("Apple beats estimates"), ("dead", "not_object"))
    # -- bytes that are not UTF-8
    add("invalid_utf8", b'{"id": "x", "text": "\xff\xfe broken"}', ("dead", "not_utf8"))
    add("utf16_json", json.dumps(event("utf16_json")).encode("utf-16"), ("dead", "not_utf8"))
    add("latin1_text", json.dumps(event("latin1_text", text="Nestl\u00e9 cuts outlook"), ensure_ascii=False).encode("latin-1"),
        ("dead", "not_utf8"))
    # -- NUL bytes, raw or escaped
    add("raw_nul_byte", j(event("raw_nul_byte")).replace(b"Apple", b"App\x00le"), ("dead", "nul_bytes"))
    add("escaped_nul", j(event("escaped_nul", text="Apple\u0000 beats")), ("dead", "nul_bytes"))
    # -- size
    add("one_mb_text", j(event("one_mb_text", text="x" * 1_000_000)), ("dead", "oversize"))
    add("text_over_limit", j(event("text_over_limit", text="word " * (MAX_CHARS // 5) + "!")), ("dead", "oversize"))
    add("text_at_limit", j(event("text_at_limit", text=("Apple beats " * MAX_CHARS)[:MAX_CHARS])), ok("text_at_limit"))
    # -- empty once cleaned
    add("empty_text", j(event("empty_text", text="")), ("dead", "empty_text"))
    add("whitespace_text", j(event("whitespace_text", text=" \t\n ")), ("dead", "empty_text"))
    add("html_only", j(event("html_only", text="<p><br/></p><div></div>")), ("dead", "empty_text"))
    add("zero_width_only", j(event("zero_width_only", text="\u200b\u200c\ufeff")), ("dead", "empty_text"))
    add("control_chars_only", j(event("control_chars_only", text="\x01\x02\x7f")), ("dead", "empty_text"))
    add("url_only", j(event("url_only", text="https://example.com/a/b?c=d")), ("dead", "empty_text"))
    # -- missing or wrongly typed fields
    add("missing_text", j(event("missing_text", text=...)), ("dead", "schema"))
    add("missing_id", j(event("missing_id", id=...)), ("dead", "schema"))
    add("missing_published_at", j(event("missing_published_at", published_at=...)), ("dead", "schema"))
    add("text_is_number", j(event("text_is_number", text=42)), ("dead", "schema"))
    add("id_is_number", j(event("id_is_number", id=12345)), ("dead", "schema"))
    add("source_is_number", j(event("source_is_number", source=5)), ("dead", "schema"))
    add("unknown_source", j(event("unknown_source", source="television")), ("dead", "schema"))
    add("text_is_object", j(event("text_is_object", text={"body": "Apple"})), ("dead", "schema"))
    add("unparseable_date", j(event("unparseable_date", published_at="yesterday-ish")), ("dead", "schema"))
    add("impossible_date", j(event("impossible_date", published_at="2026-13-45T25:61:00Z")), ("dead", "schema"))
    add("id_too_long", j(event("id_too_long", id="i" * 300)), ("dead", "schema"))
    # 254 characters, but 508 UTF-8 bytes: its Elasticsearch _id would pass the 512-byte limit and,
    # refused with the whole bulk, stop the sink.
    add("id_multibyte_over_limit", j(event("id_multibyte_over_limit", id="\u00e9" * 254)), ("dead", "schema"))
    add("id_emoji_over_limit", j(event("id_emoji_over_limit", id="\U0001F680" * 200)), ("dead", "schema"))
    add("title_too_long", j(event("title_too_long", title="T" * 2001)), ("dead", "schema"))
    add("lone_surrogate", json.dumps(event("lone_surrogate", text="Apple \ud800 beats")).encode(),  # escaped
        ("dead", "schema"))
    # -- odd but valid: labeled
    add("html_markup", j(event("html_markup", text="<p><b>Tesla</b> shares <i>plunge</i> &amp; recall</p>"
                                                   "<script>alert('x')</script>")), ok("html_markup"))
    add("emoji", j(event("emoji", text="\U0001F680\U0001F680 $TSLA to the moon \U0001F315\U0001F4C8")), ok("emoji"))
    add("emoji_only", j(event("emoji_only", text="\U0001F4C9\U0001F4C9\U0001F631")), ok("emoji_only"))
    add("arabic_rtl", j(event("arabic_rtl", text="\u0627\u0631\u062a\u0641\u0627\u0639 \u0623\u0633\u0647\u0645 "
                                                 "\u0623\u0628\u0644 \u0628\u0639\u062f \u0627\u0644\u0646\u062a\u0627\u0626\u062c",
                                  lang="ar")), ok("arabic_rtl"))
    add("hebrew_bidi_override", j(event("hebrew_bidi_override",
                                        text="\u202e\u05de\u05e0\u05d9\u05d5\u05ea \u05d8\u05e1\u05dc\u05d4 "
                                             "\u05e6\u05e0\u05d7\u05d5\u202c $TSLA", lang="he")),
        ok("hebrew_bidi_override"))
    add("combining_marks", j(event("combining_marks", text="A\u0301\u0302\u0303pple\u0336 crashes" + "\u0300" * 200)),
        ok("combining_marks"))
    add("fullwidth_and_ligatures", j(event("fullwidth_and_ligatures", text="\uff34\uff45\uff53\uff4c\uff41 "
                                                                         "pro\ufb01ts \ufb02at")),
        ok("fullwidth_and_ligatures"))
    add("huge_unknown_key", j({**event("huge_unknown_key"), "k" * 10_000: "v"}), ok("huge_unknown_key"))
    add("many_unknown_fields", j({**event("many_unknown_fields"), **{f"f{i}": i for i in range(2000)}}),
        ok("many_unknown_fields"))
    add("huge_kafka_key", j(event("huge_kafka_key")), ok("huge_kafka_key"), key=b"K" * 100_000)
    add("binary_kafka_key", j(event("binary_kafka_key")), ok("binary_kafka_key"), key=b"\xff\x00\xfe")
    # Its dead letter used to copy the key into both key and value: 2.6 MB, refused by the producer,
    # and the record was lost. The key is now replaced by its hash in the dead letter.
    add("huge_binary_key_and_junk", b"\xfe" * 400_000, ("dead", "oversize"), key=bytes(range(256)) * 1600)
    add("id_multibyte_at_limit", j(event("id_multibyte_at_limit", id="\u00e9" * 128)), (LABELED, "\u00e9" * 128))
    add("one_long_token", j(event("one_long_token", text="Apple" + "a" * 15_000)), ok("one_long_token"))
    add("future_timestamp", j(event("future_timestamp", published_at="2999-12-31T23:59:59Z")), ("dead", "future_dated"))
    add("a_day_ahead", j(event("a_day_ahead", published_at=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat())),
        ("dead", "future_dated"))
    add("no_utc_time", j(event("no_utc_time", published_at="0001-01-01T00:00:00+14:00")), ("dead", "schema"))
    add("ancient_timestamp", j(event("ancient_timestamp", published_at="1900-01-01T00:00:00Z")), ok("ancient_timestamp"))
    add("epoch_number_timestamp", j(event("epoch_number_timestamp", published_at=0)), ok("epoch_number_timestamp"))
    add("naive_timestamp", j(event("naive_timestamp", published_at="2026-11-23T14:00:00")), ok("naive_timestamp"))
    add("query_injection", j(event("query_injection", text='Apple" OR 1=1 -- {"query":{"match_all":{}}} *:* \\')),
        ok("query_injection"))
    # -- duplicate ids: the later record wins, stored once
    add("duplicate_id_first", j(event("duplicate_id", text="Apple first version of the story")), ok("duplicate_id"),
        key=b"odd-duplicate_id")
    add("duplicate_id_second", j(event("duplicate_id", text="Apple second version of the story")),
        ok("duplicate_id"), key=b"odd-duplicate_id")
    add("duplicate_exact_a", j(event("duplicate_exact")), ok("duplicate_exact"), key=b"odd-duplicate_exact")
    add("duplicate_exact_b", j(event("duplicate_exact")), ok("duplicate_exact"), key=b"odd-duplicate_exact")
    return rows


@pytest.mark.timeout(360)
def test_every_kind_of_bad_input_is_labeled_or_deadlettered_with_its_reason_and_the_worker_survives(isolated, es):
    s = isolated.settings
    assert s.batch.max_text_chars == MAX_CHARS
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    rows = corpus()
    assert len({kind for kind, *_ in rows}) >= 30
    worker = isolated.start("worker")
    isolated.start("sink")

    # One partition keeps the corpus in order, so the duplicate-id pair has a defined winner.
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all", max_request_size=2 << 20)
    offsets = {}
    for kind, key, value, _ in rows:
        offsets[producer.send(s.kafka.topics.raw_news, key=key, value=value, partition=0).get(30).offset] = kind
    # a plain record after the corpus: the worker must still be labeling
    producer.send(s.kafka.topics.raw_social, key=b"after", value=j(event("after-corpus", source="social"))).get(30)
    producer.close()

    labeled_ids = {outcome[1] for *_, outcome in rows if outcome[0] == LABELED} | {"odd-after-corpus"}
    dead_kinds = {kind for kind, *_, outcome in rows if outcome[0] != LABELED}
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(labeled_ids), 240, what="labeled corpus records in ES")
        wait_until(lambda: len(read_topic(s.kafka.bootstrap, s.kafka.topics.deadletter)) >= len(dead_kinds), 60,
                   what="dead letters")
    except AssertionError:
        pytest.fail(isolated.log_tail(worker, 80))
    assert worker.poll() is None, isolated.log_tail(worker, 80)

    # Processing is at-least-once: a rebalance (faust rebalances once by itself soon after joining)
    # re-reads records whose offsets were not committed yet, so a record may be dead-lettered twice,
    # but only if the worker logged a rebalance.
    letters = read_topic(s.kafka.bootstrap, s.kafka.topics.deadletter)
    rebalanced = sum(kind == "assigned" for kind, *_ in rebalance_log(isolated.log_text(worker))) > 1
    dead = {}
    for m in letters:
        d = json.loads(m.value)
        kind = offsets[d["source"]["offset"]]
        assert kind not in dead or rebalanced, f"{kind} dead-lettered twice without a rebalance"
        dead.setdefault(kind, d)
    docs = {}
    es.indices.refresh(index=alias)
    for h in es.search(index=alias, size=500, query={"match_all": {}})["hits"]["hits"]:
        assert h["_source"]["id"] not in docs, f"{h['_source']['id']} stored twice"
        docs[h["_source"]["id"]] = h["_source"]

    outcomes = {}
    for kind, _, _, (outcome, expected) in rows:
        if outcome == LABELED:
            outcomes[kind] = LABELED if expected in docs and kind not in dead else dead.get(kind, {}).get("reason")
        else:
            outcomes[kind] = dead[kind]["reason"] if kind in dead else ("labeled" if f"odd-{kind}" in docs else None)
    expected = {kind: (LABELED if outcome == LABELED else reason) for kind, _, _, (outcome, reason) in rows}
    assert outcomes == expected
    assert set(docs) == labeled_ids

    # dead letters are complete enough to fix and replay: reason, detail, source position, original bytes
    for kind, d in dead.items():
        assert d["stage"] == "worker" and d["reason"] and d["detail"], kind
        assert d["source"]["topic"] == s.kafka.topics.raw_news and d["source"]["partition"] == 0
        assert d["original_encoding"] in ("utf-8", "base64")
    assert dead["invalid_utf8"]["original_encoding"] == "base64"
    # a dead letter must fit in a Kafka message: the copy of a 1 MB original is cut, the size kept
    assert dead["one_mb_text"]["original_size"] > 1_000_000 and dead["one_mb_text"]["original_truncated"]
    assert "original_truncated" not in dead["text_over_limit"]
    assert dead["plain_text"]["original"] == "this is not json"
    assert dead["huge_binary_key_and_junk"]["key_size"] == 409_600 and dead["huge_binary_key_and_junk"]["key"] is None

    # what the labeled odd records look like once stored
    assert docs["odd-html_markup"]["text"] == "Tesla shares plunge & recall"
    assert docs["odd-duplicate_id"]["text"] == "Apple second version of the story"
    assert docs["odd-naive_timestamp"]["published_at"].startswith("2026-11-23T14:00:00")
    assert "$TSLA" in docs["odd-hebrew_bidi_override"]["text"]
    assert not {"\u202e", "\u202c"} & set(docs["odd-hebrew_bidi_override"]["text"])  # overrides removed
    for d in docs.values():
        assert d["sentiment"] in ("negative", "neutral", "positive") and d["model_version"]
    # Old dates share one archive index (a backfill cannot create an index per day); no future day exists.
    indices = set(es.indices.get_alias(index=alias))
    assert f"{alias}-archive" in indices
    assert not {f"{alias}-2999.12.31", f"{alias}-1900.01.01", f"{alias}-1970.01.01"} & indices

    # and it still shuts down cleanly
    assert isolated.stop(worker, signal.SIGTERM, timeout=60) == 0, isolated.log_tail(worker)
    print(f"\nRESULT bad input: {len(rows)} records of {len({k for k, *_ in rows})} kinds -> "
          f"{sum(1 for v in expected.values() if v == LABELED)} labeled, {len(dead)} dead-lettered "
          f"({', '.join(sorted(set(d['reason'] for d in dead.values())))}); worker alive")
