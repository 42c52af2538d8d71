"""kill -9 of a worker while records are still streaming in: after a restart, Elasticsearch holds every
valid record exactly once and every malformed one is dead-lettered (at-least-once processing, made
idempotent by the deterministic document _id)."""
import json
import signal
import time

import pytest

from marketpulse.kafka_topics import ensure_topics
from tests.support import (PacedProducer, es_doc_count, es_ids, generated_records, read_topic, wait_pipeline_ready,
                           wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

N_RECORDS = 1500
RATE = 50.0  # records/s: a 30 s stream, well below capacity, so the kill lands mid-stream
MALFORMED_REASONS = {"not_json", "not_utf8", "not_object", "schema", "empty_text", "nul_bytes"}


@pytest.mark.timeout(420)
def test_worker_killed_mid_stream_and_restarted_loses_nothing_and_duplicates_nothing(isolated, es):
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    records, valid, malformed = generated_records(s, seed=31, n=N_RECORDS, malformed_fraction=0.05)
    worker = isolated.start("worker")
    sink = isolated.start("sink")
    wait_pipeline_ready(isolated, worker, sink)
    producer = PacedProducer(s.kafka.bootstrap, records, RATE)
    producer.start()

    try:
        wait_until(lambda: es_doc_count(es, alias) >= 150, 240, what="the worker labeling the stream")
    except AssertionError:
        pytest.fail(isolated.log_tail(worker, 60))
    assert producer.is_alive(), "the stream ended before the kill: not mid-stream"
    isolated.stop(worker, signal.SIGKILL)
    killed_at_docs = es_doc_count(es, alias)
    time.sleep(2)
    worker = isolated.start("worker")

    producer.join(120)
    assert producer.error is None and producer.acked >= len(records)
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(valid), 240, what="every valid record in ES")
    except AssertionError:
        pytest.fail(f"{es_doc_count(es, alias)}/{len(valid)} in ES\n" + isolated.log_tail(worker, 60))
    time.sleep(3)  # late re-deliveries, if any, would land now

    ids = es_ids(es, alias)
    assert len(ids) == len(valid), "duplicates or extra documents"
    assert set(ids) == valid

    def dead_letters():
        dead = [json.loads(m.value) for m in read_topic(s.kafka.bootstrap, s.kafka.topics.deadletter)]
        return dead, {(d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]) for d in dead}

    # the last malformed records may still be on their way: wait for them, then count exactly
    wait_until(lambda: len(dead_letters()[1]) >= malformed, 120, 1.0, what="every malformed record dead-lettered")
    dead, positions = dead_letters()
    assert len(positions) == malformed  # a re-processed batch may dead-letter twice, never lose one
    assert {d["reason"] for d in dead} <= MALFORMED_REASONS
    assert worker.poll() is None, isolated.log_tail(worker)
    events = len(read_topic(s.kafka.bootstrap, s.kafka.topics.events))
    print(f"\nRESULT worker kill -9: killed with {killed_at_docs}/{len(valid)} documents in ES; after restart "
          f"{len(ids)} documents = {len(valid)} valid records, 0 duplicates; {malformed} dead letters; "
          f"{events - len(valid)} events re-processed after the kill (overwritten by _id)")
