"""The ES sink process on the real stack: an event is stored once under the alias, even when it is
re-sent with a publication time on another day (its day index changes)."""
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaProducer

from marketpulse import wire
from marketpulse.kafka_topics import ensure_topics
from marketpulse.schemas import LabeledEvent
from tests.support import es_ids, wait_until

pytestmark = pytest.mark.integration


def stored_texts(es, alias: str) -> list[str]:
    if not es.indices.exists_alias(name=alias):
        return []
    es.indices.refresh(index=alias)
    return [h["_source"]["text"] for h in es.search(index=alias, query={"term": {"id": "moved"}})["hits"]["hits"]]


def test_an_event_re_sent_with_its_time_moved_across_midnight_is_stored_once(isolated, es):
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    now = datetime.now(timezone.utc)
    first = LabeledEvent(id="moved", source="news", source_name="wire", published_at=now.replace(hour=0, minute=5),
                         text="Bank fined over misconduct", sentiment="negative",
                         sentiment_scores={"negative": 0.9, "neutral": 0.05, "positive": 0.05}, topic="Legal",
                         topic_scores=[{"label": "Legal", "score": 0.9}], model_version="t")
    moved = first.model_copy(update={"published_at": first.published_at - timedelta(minutes=10),  # the day before
                                     "text": "Bank fined over misconduct (corrected)"})
    sink = isolated.start("sink")
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all")
    for ev in (first, moved):
        out = wire.encode_labeled(ev, s.kafka.topics.events)
        producer.send(out.topic, key=out.key, value=out.value, headers=list(out.headers)).get(30)
        wait_until(lambda ev=ev: ev.text in stored_texts(es, alias), 120, what=f"{ev.text!r} searchable")
    producer.close()
    assert es_ids(es, alias) == ["moved"], "stored once under the alias"
    es.indices.refresh(index=alias)
    [hit] = es.search(index=alias, query={"term": {"id": "moved"}})["hits"]["hits"]
    assert hit["_index"] == f"{alias}-{moved.published_at:%Y.%m.%d}" and hit["_source"]["text"].endswith("(corrected)")
    assert sink.poll() is None, isolated.log_tail(sink)
