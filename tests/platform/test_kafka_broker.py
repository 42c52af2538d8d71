"""The real local Kafka broker: topics, produce, consume in a group, commit, resume."""
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from marketpulse.settings import KafkaSettings
from marketpulse.kafka_topics import ensure_topics, wanted_topics

pytestmark = pytest.mark.integration


def _consume(bootstrap, topic, group, n, timeout_s=120):
    # timeout_s only guards against a hang: iteration ends as soon as n messages arrived
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=timeout_s * 1000)
    got = []
    for msg in c:
        got.append(msg.value)
        if len(got) == n:
            break
    return c, got


def test_create_topic_produce_consume_commit_and_resume(kafka_bootstrap, unique):
    topic, group = f"it-platform-{unique}", f"it-group-{unique}"
    created = ensure_topics(KafkaSettings(bootstrap=kafka_bootstrap),
                            [NewTopic(topic, num_partitions=1, replication_factor=1)])
    assert created == [topic]

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, key=str(i).encode(), value=f"m{i}".encode())
    producer.flush(); producer.close()

    c, first = _consume(kafka_bootstrap, topic, group, 4)
    assert first == [b"m0", b"m1", b"m2", b"m3"]
    c.commit()
    assert c.committed(TopicPartition(topic, 0)) == 4
    c.close()

    # a new consumer of the same group resumes after the committed offset
    c, rest = _consume(kafka_bootstrap, topic, group, 6)
    assert rest == [f"m{i}".encode() for i in range(4, 10)]
    c.close()
    KafkaAdminClient(bootstrap_servers=kafka_bootstrap).delete_topics([topic])


def test_ensure_topics_creates_product_topics_once(kafka_bootstrap, unique):
    k = KafkaSettings(bootstrap=kafka_bootstrap, topics={
        "raw_news": f"it-{unique}.raw.news", "raw_social": f"it-{unique}.raw.social", "events": f"it-{unique}.events",
        "deadletter": f"it-{unique}.dl", "alerts": f"it-{unique}.alerts", "webhook_deliveries": f"it-{unique}.wd", "alerter_state": f"it-{unique}.state",
        "partitions": 3})
    names = {t.name for t in wanted_topics(k)}
    assert set(ensure_topics(k)) == names
    assert ensure_topics(k) == []  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    meta = admin.describe_topics(sorted(names))
    # the alerter's compacted snapshot topic has one partition, the rest the configured count
    assert {m["name"]: len(m["partitions"]) for m in meta} == {n: 1 if n.endswith(".state") else 3 for n in names}
    admin.delete_topics(sorted(names)); admin.close()
