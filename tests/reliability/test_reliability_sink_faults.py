"""Faults between the ES sink and Elasticsearch, on the real stack: a write block on the events index,
per-document throttling (429), and a `kill -9` of the sink in the middle of a bulk request.

- The write block is real: `index.blocks.write: true` on the daily index behind the events alias, set
  while labeled events stream in; Elasticsearch answers every bulk item with 403
  `cluster_block_exception`.
- Throttling cannot be provoked on demand here: `indexing_pressure.memory.limit` (and the write
  thread pool's queue) are static node settings, so a shared single-node Elasticsearch cannot be made
  to reject on demand. A proxy in the test (`tests.support.EsFaultProxy`) forwards every request to the
  real Elasticsearch, answers one bulk request as a whole with 429 (what a coordinating node does
  when the indexing-pressure limit is hit) and refuses single items of the next ones with 429
  `es_rejected_execution_exception` *without forwarding them* (a rejected item is not indexed).
- The kill is a real SIGKILL of the `marketpulse sink` process; the same proxy makes the moment
  exact (see the test).

The first two run the sink alone on labeled events produced to the events topic (no model, so the
scenarios stay small on two cores); the kill runs the worker too.
"""
import json
import signal
import threading
import time
from datetime import datetime, timezone

import pytest
import yaml

from marketpulse import wire
from marketpulse.kafka_topics import ensure_topics
from stream.generate import Generator
from tests.support import (BulkCall, EsFaultProxy, PacedProducer, committed_total, es_doc_count, es_ids,
                           generated_records, labeled_from_truth, labeled_records, read_topic, topic_end_total,
                           wait_pipeline_ready, wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

BLOCK_LOGGED = "refuses writes"  # the sink's log line for a write block


def first_minute_today():  # where labeled_records publishes by default: the same daily index
    return datetime.now(timezone.utc).replace(hour=0, minute=1, second=0, microsecond=0)


def sink_started(iso, proc) -> None:
    wait_until(lambda: "es sink consuming" in iso.log_text(proc), 120, what="the sink consuming")


def through(iso, url: str):
    """The test's settings with Elasticsearch at `url` (the fault proxy), for every process started after."""
    cfg = yaml.safe_load(iso.config.read_text())
    cfg["elasticsearch"]["url"] = url
    iso.config.write_text(yaml.safe_dump(cfg))
    return type(iso.settings).load(iso.config)


def dead_letters(s) -> list[dict]:
    return [json.loads(m.value) for m in read_topic(s.kafka.bootstrap, s.kafka.topics.deadletter)]


def produce(bootstrap: str, records: list, rate: float) -> PacedProducer:
    producer = PacedProducer(bootstrap, records, rate)
    producer.start()
    return producer


@pytest.mark.timeout(180)
def test_a_write_blocked_index_makes_documents_wait_not_dead_letter(isolated, es):
    """100 events are stored; then the daily index gets `index.blocks.write: true` and 200 more
    arrive, among them one Elasticsearch refuses for its own content (an empty field name: 400
    `document_parsing_exception`). While blocked: nothing is dead-lettered and the sink's committed
    offsets do not move. Once the block is lifted: all 300 good events are stored exactly once, and
    only the bad one is dead-lettered."""
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    first, first_ids = labeled_records(s, seed=61, n=100, id_prefix="a-")
    during, during_ids = labeled_records(s, seed=62, n=200, id_prefix="b-")
    sample = next(iter(Generator(seed=63, rate_per_s=1, duration_s=60, start=first_minute_today()).samples()))
    bad = wire.encode_labeled(labeled_from_truth(sample).model_copy(
        update={"id": "bad-field-name", "timings_ms": {"": 1.0}}), s.kafka.topics.events)
    during.insert(100, (bad.topic, bad.key, bad.value))

    sink = isolated.start("sink")
    sink_started(isolated, sink)
    produce(s.kafka.bootstrap, first, 200).join(60)
    wait_until(lambda: es_doc_count(es, alias) == len(first_ids), 60, what="the first 100 events stored")
    wait_until(lambda: committed_total(s.kafka.bootstrap, s.kafka.es_sink_group, s.kafka.topics.events) == len(first),
               60, what="their offsets committed")
    indices = ",".join(es.indices.get_alias(name=alias))
    es.indices.put_settings(index=indices, settings={"index.blocks.write": True})
    try:
        producer = produce(s.kafka.bootstrap, during, 50)
        producer.join(60)
        assert producer.error is None and producer.acked == len(during)
        # the sink met the block: by its log (retrying), or by dead letters (the fault this test is about)
        wait_until(lambda: isolated.log_text(sink).count(BLOCK_LOGGED) >= 4
                   or topic_end_total(s.kafka.bootstrap, s.kafka.topics.deadletter) > 0,
                   90, what="the sink meeting the write block")
        time.sleep(1)
        dead = dead_letters(s)
        assert not dead, (f"{len(dead)} dead letters while the index was only write-blocked: "
                          f"{sorted({d['detail'][:120] for d in dead})}")
        assert es_doc_count(es, alias) == len(first_ids)
        blocked_commit = committed_total(s.kafka.bootstrap, s.kafka.es_sink_group, s.kafka.topics.events)
        assert blocked_commit == len(first), "offsets of documents not written were committed"
        blocked_at = time.monotonic()
    finally:
        es.indices.put_settings(index=indices, settings={"index.blocks.write": None})

    good = first_ids | during_ids
    wait_until(lambda: es_doc_count(es, alias) >= len(good), 60, 0.5, what="every event stored after the block")
    caught_up_s = time.monotonic() - blocked_at
    time.sleep(2)  # late re-writes, if any, would land now
    ids = es_ids(es, alias)
    assert len(ids) == len(good) and set(ids) == good, "each event exactly once, the bad one not at all"
    wait_until(lambda: dead_letters(s), 30, what="the bad document dead-lettered")
    [dl] = dead_letters(s)
    assert dl["reason"] == "es_rejected" and "document_parsing_exception" in dl["detail"], dl["detail"]
    assert dl["key"] == bad.key.decode()
    assert sink.poll() is None, isolated.log_tail(sink)
    log_text = isolated.log_text(sink)
    print(f"\nRESULT write block: {len(during)} records arrived while the index was write-blocked; sink logged "
          f"the block {log_text.count(BLOCK_LOGGED)} times, dead-lettered none of them and kept its commit at "
          f"{blocked_commit}; {caught_up_s:.1f} s after the block was lifted {len(ids)} documents = {len(good)} "
          f"events, 0 duplicates; 1 dead letter (document_parsing_exception)")


THROTTLED = {"type": "es_rejected_execution_exception",
             "reason": "rejected execution of primary operation [coordinating_and_primary_bytes=53687091, "
                       "replica_bytes=0, all_bytes=53687091, primary_operation_bytes=1024, "
                       "max_coordinating_and_primary_bytes=53687091]"}


@pytest.mark.timeout(150)
def test_throttled_documents_are_written_once_when_elasticsearch_accepts_them_again(isolated, es):
    """300 events wait in the events topic when the sink starts (so its bulks are large), 100 more
    stream in after. Through the proxy, the first bulk request is refused as a whole with 429; in
    the next five, every third document is refused with 429 and not indexed (a retried one may be
    refused again). Every event ends up stored exactly once and none is dead-lettered."""
    with EsFaultProxy() as proxy:
        s = through(isolated, proxy.url)
        ensure_topics(s.kafka)
        alias = s.elasticsearch.index_prefix
        backlog, backlog_ids = labeled_records(s, seed=71, n=300, id_prefix="a-")
        stream, stream_ids = labeled_records(s, seed=72, n=100, id_prefix="b-")
        sent_ids = backlog_ids | stream_ids
        whole, refused = [0], set()
        writes = iter(range(1, 10**6))

        def throttle(call: BulkCall):
            if all("delete" in action for action, _ in call.ops):
                return call.forward()
            n = next(writes)
            if n == 1:
                whole[0] += 1
                return 429, {"error": {"root_cause": [THROTTLED], **THROTTLED}, "status": 429}
            if n <= 6:
                positions = set(range(0, len(call.ops), 3))
                refused.update(call.ops[j][0]["index"]["_id"] for j in positions)
                return EsFaultProxy.reject(call, positions, 429, THROTTLED)
            return call.forward()

        proxy.bulk_hook = throttle
        producer = produce(s.kafka.bootstrap, backlog, 300)
        producer.join(60)
        assert producer.error is None and producer.acked == len(backlog)
        sink = isolated.start("sink")
        sink_started(isolated, sink)
        producer = produce(s.kafka.bootstrap, stream, 50)
        producer.join(60)
        assert producer.error is None and producer.acked == len(stream)
        try:
            wait_until(lambda: es_doc_count(es, alias) >= len(sent_ids), 90, 0.5, what="every event stored")
        except AssertionError:
            pytest.fail(f"{es_doc_count(es, alias)}/{len(sent_ids)} in ES\n{isolated.log_tail(sink, 40)}")
        time.sleep(2)
        ids = es_ids(es, alias)
        assert whole[0] == 1 and len(refused) >= 50, (whole, len(refused))
        assert len(ids) == len(sent_ids) and set(ids) == sent_ids
        dead = dead_letters(s)
        assert not dead, sorted({d["detail"][:120] for d in dead})
        assert sink.poll() is None, isolated.log_tail(sink)
        print(f"\nRESULT per-item 429: 1 bulk refused whole, then {len(refused)} documents refused singly (not "
              f"indexed) in 5 bulks; {proxy.bulk_requests} bulk requests in all; {len(ids)} documents = "
              f"{len(sent_ids)} events, 0 duplicates, 0 dead letters")


@pytest.mark.timeout(240)
def test_a_sink_killed_in_the_middle_of_a_bulk_leaves_every_record_stored_exactly_once(isolated, es):
    """Worker and sink run on 400 generated records streamed at 20/s. How the kill lands mid-bulk: the
    sink talks to Elasticsearch through the proxy, which, once 40 documents are stored, forwards only
    the first half of the next bulk request of two or more documents and holds it open; the test then
    SIGKILLs the sink. At that moment Elasticsearch holds part of that bulk (checked: more documents
    than the sink has committed offsets) and not the rest of the stream. The sink is started again
    (the proxy now forwards everything) and must store every valid record exactly once."""
    with EsFaultProxy() as proxy:
        s = through(isolated, proxy.url)
        ensure_topics(s.kafka)
        alias = s.elasticsearch.index_prefix
        records, valid, _ = generated_records(s, seed=81, n=400)
        stored = {"n": 0}
        held, release = threading.Event(), threading.Event()

        def hold_mid_bulk(call: BulkCall):
            writes = [j for j, (action, _) in enumerate(call.ops) if "index" in action]
            if held.is_set() or stored["n"] < 40 or len(writes) < 2:
                answer = call.forward()
                stored["n"] += sum(1 for it in answer["items"] if it.get("index", {}).get("status", 500) < 300)
                return answer
            call.forward(writes[:len(writes) // 2])
            held.set()
            release.wait(120)  # the sink is killed meanwhile; nothing it could read comes back
            return 503, {"error": {"type": "unavailable_shards_exception", "reason": "held by the test"}, "status": 503}

        proxy.bulk_hook = hold_mid_bulk
        worker = isolated.start("worker")
        sink = isolated.start("sink")
        wait_pipeline_ready(isolated, worker, sink)
        producer = produce(s.kafka.bootstrap, records, 20)
        try:
            wait_until(held.is_set, 120, 0.2, what="a bulk request held half-written")
        except AssertionError:
            pytest.fail(f"{es_doc_count(es, alias)} in ES\nworker:\n{isolated.log_tail(worker, 30)}\n"
                        f"sink:\n{isolated.log_tail(sink, 30)}")
        in_es = es_doc_count(es, alias)
        committed = committed_total(s.kafka.bootstrap, s.kafka.es_sink_group, s.kafka.topics.events)
        assert producer.is_alive(), "the stream ended before the kill: not mid-stream"
        isolated.stop(sink, signal.SIGKILL)
        proxy.bulk_hook = None
        release.set()
        assert committed < in_es < len(valid), (committed, in_es, len(valid))  # written, not committed, not all
        sink = isolated.start("sink")

        producer.join(120)
        assert producer.error is None and producer.acked >= len(records)
        try:
            wait_until(lambda: es_doc_count(es, alias) >= len(valid), 150, 1.0, what="every valid record in ES")
        except AssertionError:
            pytest.fail(f"{es_doc_count(es, alias)}/{len(valid)} in ES\nsink:\n{isolated.log_tail(sink, 40)}")
        time.sleep(3)  # late re-writes, if any, would land now
        ids = es_ids(es, alias)
        assert len(ids) == len(valid), "duplicates or extra documents"
        assert set(ids) == valid
        dead = dead_letters(s)
        assert not dead, sorted({d["detail"][:120] for d in dead})
        assert sink.poll() is None and worker.poll() is None, isolated.log_tail(sink)
        print(f"\nRESULT sink kill -9 mid-bulk: killed with {in_es}/{len(valid)} documents in ES, {committed} "
              f"offsets committed ({in_es - committed} written, not committed, half a bulk among them); after "
              f"restart {len(ids)} documents = {len(valid)} valid records, 0 duplicates, 0 dead letters")
