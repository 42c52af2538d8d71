"""The Kafka broker restarts (controlled shutdown, then a fresh start) while records stream in: the
worker and the sink reconnect by themselves, nothing is lost, nothing is stored twice.

This really stops the shared local broker for a few seconds; the `finally` brings the stack back
whatever happens.
"""
import signal
import time

import pytest

from marketpulse.kafka_topics import ensure_topics
from tests.support import (PacedProducer, ensure_stack_running, es_doc_count, es_ids, generated_records,
                           restart_kafka, wait_pipeline_ready, wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

N_RECORDS = 2000
RATE = 40.0  # records/s: a 50 s stream around the restart
RECOVERY_S = 150  # from the broker answering again to the last record searchable


@pytest.mark.timeout(480)
def test_broker_restart_mid_stream_workers_reconnect_and_nothing_is_lost(isolated, es):
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    records, valid, _ = generated_records(s, seed=41, n=N_RECORDS)
    worker = isolated.start("worker")
    sink = isolated.start("sink")
    wait_pipeline_ready(isolated, worker, sink)
    producer = PacedProducer(s.kafka.bootstrap, records, RATE)
    producer.start()
    try:
        try:
            wait_until(lambda: es_doc_count(es, alias) >= 200, 240, what="the pipeline running")
        except AssertionError:
            pytest.fail(isolated.log_tail(worker, 60))
        assert producer.is_alive(), "the stream ended before the restart: not mid-stream"
        before = es_doc_count(es, alias)
        outage_s = restart_kafka()
    finally:
        ensure_stack_running()

    back_at = time.monotonic()
    producer.join(120)
    assert producer.error is None and producer.acked >= len(records)
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(valid), RECOVERY_S, 1.0,
                   what="every record in ES after the restart")
    except AssertionError:
        pytest.fail(f"{es_doc_count(es, alias)}/{len(valid)} in ES\nworker:\n{isolated.log_tail(worker, 60)}\n"
                    f"sink:\n{isolated.log_tail(sink, 30)}")
    recovered_s = time.monotonic() - back_at
    time.sleep(3)

    # the same processes, reconnected: not restarted by anyone
    assert worker.poll() is None, isolated.log_tail(worker, 80)
    assert sink.poll() is None, isolated.log_tail(sink, 80)
    ids = es_ids(es, alias)
    assert len(ids) == len(valid) and set(ids) == valid
    assert isolated.stop(worker, signal.SIGTERM, timeout=60) == 0, isolated.log_tail(worker)
    print(f"\nRESULT kafka restart: broker down/restarting {outage_s:.1f} s with {before}/{len(valid)} documents "
          f"in ES; worker and sink reconnected, all records searchable {recovered_s:.0f} s after the broker was back; {len(ids)} documents = {len(valid)} records, 0 duplicates; "
          f"producer re-sent {producer.resent} records during the outage")
