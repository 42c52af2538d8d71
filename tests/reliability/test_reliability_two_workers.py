"""Two worker processes in one consumer group share the raw topics' partitions: both hold some, every
partition is consumed to its end, and every record is labeled, stored exactly once in Elasticsearch.

Who holds what comes from each worker's own log (the assignments it logged), not from the broker's
group description: that is a snapshot which is in flux during a rebalance, and kafka-python cannot
always decode faust's member metadata. Processing is at-least-once (stream/app.py: a rebalance drops
offsets acknowledged since the last commit and the partitions are re-read from the committed
offsets), so a record may be labeled twice in the events topic, but only if a rebalance happened; the
Elasticsearch sink's deterministic _id keeps one document per record either way."""
import json
from collections import Counter

import pytest
from kafka import KafkaConsumer, TopicPartition

from marketpulse.kafka_topics import ensure_topics
from tests.support import (PacedProducer, current_assignment, es_doc_count, es_ids, generated_records, read_topic,
                           rebalance_log, wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

N_RECORDS = 1200


@pytest.mark.timeout(480)
def test_two_workers_share_the_partitions_and_label_every_record_once(isolated, es):
    s = isolated.settings
    k = s.kafka
    ensure_topics(k)
    alias = s.elasticsearch.index_prefix
    workers = [isolated.start("worker"), isolated.start("worker")]
    isolated.start("sink")
    raw = {(t, p) for t in k.topics.raw() for p in range(k.topics.partitions)}

    def shared():
        """Both workers' raw partitions in the same generation, split without overlap and covering
        every raw partition; None while either has not logged it yet (joining or rebalancing)."""
        now = [current_assignment(isolated.log_text(w)) for w in workers]
        if None in now or now[0][0] != now[1][0]:
            return None
        mine = [set(tps) & raw for _, tps in now]
        return mine if all(mine) and not mine[0] & mine[1] and mine[0] | mine[1] == raw else None

    def fail_with_logs(msg: str):
        pytest.fail(msg + "\n" + "\n".join(isolated.log_tail(w, 40) for w in workers))

    try:
        before = wait_until(shared, 240, 1.0, what="two workers each holding raw partitions")
    except AssertionError as exc:
        fail_with_logs(str(exc))
    logged_before = [len(rebalance_log(isolated.log_text(w))) for w in workers]

    records, valid, _ = generated_records(s, seed=61, n=N_RECORDS)
    assert len(valid) == len(records)  # no malformed records: every one must become an event
    producer = PacedProducer(k.bootstrap, records, rate=200.0)
    producer.start(); producer.join(120)
    assert producer.error is None and producer.acked == len(records)
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(valid), 240, 1.0, what="every record in ES")
    except AssertionError as exc:
        fail_with_logs(str(exc))

    # every raw partition had records and the group committed each one to its end
    c = KafkaConsumer(bootstrap_servers=k.bootstrap, group_id=k.worker_group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t, p in sorted(raw)]
        ends = c.end_offsets(tps)
        try:
            wait_until(lambda: all((c.committed(tp) or 0) == ends[tp] for tp in tps), 120, 1.0,
                       what="the group's commits reaching every partition's end")
        except AssertionError as exc:
            fail_with_logs(f"{exc}: {[(tp.topic, tp.partition, c.committed(tp), ends[tp]) for tp in tps]}")
    finally:
        c.close()
    assert all(ends[tp] > 0 for tp in tps)
    assert all(w.poll() is None for w in workers), "\n".join(isolated.log_tail(w, 40) for w in workers)

    # still shared by both at the end (waiting out a rebalance that may be under way right now)
    try:
        after = wait_until(shared, 120, 1.0, what="two workers each holding raw partitions at the end")
    except AssertionError as exc:
        fail_with_logs(str(exc))
    per_worker = [sum(ends[TopicPartition(t, p)] for t, p in ps) for ps in after]
    assert all(n > 0 for n in per_worker)

    # every record labeled; Elasticsearch holds exactly one document per record
    events = Counter(json.loads(m.value)["id"] for m in read_topic(k.bootstrap, k.topics.events))
    rebalances = [len(rebalance_log(isolated.log_text(w))) > n for w, n in zip(workers, logged_before)]
    assert set(events) == valid, f"{len(valid - set(events))} records never labeled, {len(set(events) - valid)} unknown"
    ids = es_ids(es, alias)
    assert len(ids) == len(valid) and set(ids) == valid
    # a record labeled twice is a redelivery, which only a rebalance causes
    twice = sum(n - 1 for n in events.values())
    assert twice == 0 or any(rebalances), f"{twice} records labeled more than once without any rebalance"

    def show(parts):
        return " | ".join(", ".join(f"{t.rsplit('.', 1)[-1]} {p}" for t, p in sorted(ps)) for ps in parts)

    note = (f"a rebalance happened meanwhile (logged by workers {[i for i, r in enumerate(rebalances) if r]}); "
            f"{twice} records re-delivered and labeled again" if any(rebalances) else "no rebalance")
    print(f"\nRESULT two workers: partitions before [{show(before)}], at the end [{show(after)}]; records in "
          f"each worker's final partitions {per_worker}; "
          f"{sum(events.values())} events for {len(records)} records, every record labeled; {note}; "
          f"{len(ids)} documents, one per record")
