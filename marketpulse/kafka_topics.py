"""Creates the Kafka topics marketpulse uses, with the configured partitions and retention."""
from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from marketpulse import kafka_client
from marketpulse.settings import KafkaSettings

log = logging.getLogger(__name__)


def wanted_topics(kafka: KafkaSettings) -> list[NewTopic]:
    t = kafka.topics
    cfg = {"retention.ms": str(t.retention_ms)}
    names = [t.raw_news, t.raw_social, t.events, t.deadletter, t.alerts, t.webhook_deliveries]
    topics = [NewTopic(n, num_partitions=t.partitions, replication_factor=t.replication_factor, topic_configs=cfg)
              for n in names]
    # The alerter's snapshots: only the latest per key matters, and one can be a few MB.
    topics.append(NewTopic(t.alerter_state, num_partitions=1, replication_factor=t.replication_factor,
                           topic_configs={"cleanup.policy": "compact", "max.message.bytes": str(32 * 1024 * 1024)}))
    return topics


def connect_admin(kafka: KafkaSettings) -> KafkaAdminClient:
    """An admin client; a failed first connection raises the error that says why (kafka_client)."""
    return kafka_client.admin(kafka, client_id=f"{kafka.client_id}-admin")


def ensure_topics(kafka: KafkaSettings, topics: list[NewTopic] | None = None) -> list[str]:
    """Creates missing topics; returns the names it created. Existing topics are left as they are."""
    topics = wanted_topics(kafka) if topics is None else topics
    admin = connect_admin(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another process won the race: fine
                pass
            log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        admin.close()
