"""Elasticsearch unavailable for 60 s while records stream in: the sink keeps retrying with backoff,
does not commit what was not acknowledged, and catches up by itself once Elasticsearch is back.

The outage is a SIGSTOP/SIGCONT of the shared local Elasticsearch JVM: requests hang and time out as
they do when a node is unreachable, and the node comes back in an instant instead of after a full
restart (which would take minutes on two cores and block every other user of the stack).
"""
import re
import time

import pytest
import yaml

from marketpulse.kafka_topics import ensure_topics
from tests.support import (PacedProducer, ensure_stack_running, es_doc_count, es_ids, generated_records, paused,
                           stack_pid, topic_end_total, wait_pipeline_ready, wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

OUTAGE_S = 60
N_RECORDS = 3000
RATE = 30.0  # records/s: a 100 s stream that spans the outage


def es_healthy(es) -> bool:
    """False, not an exception, while a node that was just resumed does not answer yet."""
    try:
        return es.cluster.health(wait_for_status="yellow", timeout="5s")["status"] != "red"
    except Exception:
        return False


@pytest.mark.timeout(480)
def test_elasticsearch_down_for_a_minute_mid_stream_the_sink_resumes_by_itself_without_loss(isolated, es):
    cfg = yaml.safe_load(isolated.config.read_text())
    cfg["elasticsearch"]["request_timeout_s"] = 5.0  # fail fast and retry, rather than hang for 30 s
    isolated.config.write_text(yaml.safe_dump(cfg))
    s = type(isolated.settings).load(isolated.config)
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    records, valid, _ = generated_records(s, seed=51, n=N_RECORDS)
    worker = isolated.start("worker")
    sink = isolated.start("sink")
    wait_pipeline_ready(isolated, worker, sink)
    producer = PacedProducer(s.kafka.bootstrap, records, RATE)
    producer.start()
    try:
        wait_until(lambda: es_doc_count(es, alias) >= 100, 240, what="the pipeline running")
    except AssertionError:
        pytest.fail(isolated.log_tail(worker, 60))
    assert producer.is_alive(), "the stream ended before the outage: not mid-stream"

    events_before = topic_end_total(s.kafka.bootstrap, s.kafka.topics.events)
    try:
        with paused(stack_pid("elasticsearch")):
            time.sleep(OUTAGE_S / 2)
            events_mid = topic_end_total(s.kafka.bootstrap, s.kafka.topics.events)
            time.sleep(OUTAGE_S / 2)
            events_end = topic_end_total(s.kafka.bootstrap, s.kafka.topics.events)
    finally:
        ensure_stack_running()
    wait_until(lambda: es_healthy(es), 180, what="Elasticsearch healthy again")
    resumed_at = time.monotonic()
    events_during = events_end - events_before
    # the worker went on labeling into Kafka while ES was away (only the sink depends on ES): its output
    # grew in both halves of the outage, which work in flight when ES stopped cannot explain. Counted
    # as growth, not as a rate: how fast depends on how busy the machine is.
    assert events_before < events_mid < events_end, (events_before, events_mid, events_end)

    producer.join(120)
    assert producer.error is None and producer.acked >= len(records)
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(valid), 180, 1.0, what="every record in ES after the outage")
    except AssertionError:
        pytest.fail(f"{es_doc_count(es, alias)}/{len(valid)} in ES\nsink:\n{isolated.log_tail(sink, 60)}")
    caught_up_s = time.monotonic() - resumed_at
    time.sleep(2)

    assert sink.poll() is None, isolated.log_tail(sink)  # the same sink process, never restarted
    assert worker.poll() is None, isolated.log_tail(worker)
    sink_log = isolated.log_text(sink)
    # It saw the outage and retried with backoff (logged delays): the bulk itself, or the removal of
    # older copies that follows each bulk, whichever request the outage caught.
    retries = len(re.findall(r"(?:es bulk|removing older copies) failed \(.*\); retrying in", sink_log))
    assert retries >= 2, sink_log[-3000:]
    ids = es_ids(es, alias)
    assert len(ids) == len(valid) and set(ids) == valid
    print(f"\nRESULT es outage: ES paused {OUTAGE_S} s; worker labeled {events_during} events meanwhile "
          f"({events_mid - events_before} + {events_end - events_mid}, input {RATE:.0f}/s); sink "
          f"logged {retries} retries and caught up {caught_up_s:.0f} s after ES resumed (stream still "
          f"running); {len(ids)} documents = {len(valid)} records, 0 duplicates")
