"""Two worker processes in one consumer group share the raw topics' partitions: both get some, every
partition is consumed to its end, and every record is labeled exactly once."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from stream.topics import ensure_topics
from tests.support import PacedProducer, es_doc_count, es_ids, generated_records, read_topic, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

N_RECORDS = 1200


def group_assignment(bootstrap: str, group: str) -> dict[str, set[tuple[str, int]]]:
    """member id -> assigned (topic, partition)s, once the group is Stable; {} before."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        desc = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if desc["group_state"] != "Stable":
        return {}
    return {m["member_id"]: {(a["topic"], p) for a in m["member_assignment"]["assigned_partitions"]
                             for p in a["partitions"]} for m in desc["members"]}


@pytest.mark.timeout(420)
def test_two_workers_share_the_partitions_and_label_every_record_once(isolated, es):
    s = isolated.settings
    k = s.kafka
    ensure_topics(k)
    alias = s.elasticsearch.index_prefix
    workers = [isolated.start("worker"), isolated.start("worker")]
    isolated.start("sink")
    raw = {(t, p) for t in k.topics.raw() for p in range(k.topics.partitions)}

    def both_assigned():
        a = group_assignment(k.bootstrap, k.worker_group)
        mine = {m: {tp for tp in tps if tp in raw} for m, tps in a.items()}
        return mine if len(mine) == 2 and all(mine.values()) and set().union(*mine.values()) == raw else None

    try:
        assignment = wait_until(both_assigned, 240, 1.0, what="two workers each holding raw partitions")
    except AssertionError:
        pytest.fail("\n".join(isolated.log_tail(w, 40) for w in workers))
    parts = list(assignment.values())
    assert not parts[0] & parts[1]  # shared, not duplicated

    records, valid, _ = generated_records(s, seed=61, n=N_RECORDS)
    producer = PacedProducer(k.bootstrap, records, rate=200.0)
    producer.start(); producer.join(120)
    assert producer.error is None and producer.acked == len(records)
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(valid), 240, 1.0, what="every record in ES")
    except AssertionError:
        pytest.fail("\n".join(isolated.log_tail(w, 40) for w in workers))
    time.sleep(3)

    # no rebalance happened meanwhile, so "at least once" must have been exactly once
    assert both_assigned() == assignment
    assert all(w.poll() is None for w in workers)
    events = read_topic(k.bootstrap, k.topics.events)
    assert len(events) == len(records)
    ids = es_ids(es, alias)
    assert len(ids) == len(valid) and set(ids) == valid

    # every raw partition had records and was consumed to its end by the group
    c = KafkaConsumer(bootstrap_servers=k.bootstrap, group_id=k.worker_group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t, p in sorted(raw)]
        ends = c.end_offsets(tps)
        wait_until(lambda: all((c.committed(tp) or 0) == ends[tp] for tp in tps), 30, 1.0,
                   what="the group's commits reaching every partition's end")
    finally:
        c.close()
    assert all(ends[tp] > 0 for tp in tps)
    per_worker = [sum(ends[TopicPartition(t, p)] for t, p in ps) for ps in parts]
    assert all(n > 0 for n in per_worker)
    print(f"\nRESULT two workers: partitions {[sorted(p) for p in parts]}; records per worker {per_worker}; "
          f"{len(events)} events for {len(records)} records (each labeled once); {len(ids)} documents")
