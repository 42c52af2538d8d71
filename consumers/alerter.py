"""The live alerter: labeled events -> SpikeMonitor -> alerts topic, alerts index, webhooks.

One alerter per consumer group reads every partition of the events topic (the market key spans
them all), so it assigns partitions itself instead of joining a rebalancing group. Its state (open
buckets, every detector) is snapshotted together with the offsets it covers to a compacted Kafka
topic; a restart loads the latest snapshot and seeks to exactly those offsets, so no event is
counted twice or missed. Without a snapshot it rebuilds its baseline from the events topic,
starting one baseline window back in time.

Alert ids are deterministic (key + incident start): re-delivered alerts overwrite in Elasticsearch
and carry the same Idempotency-Key to webhooks.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from consumers.alerting import DetectorConfig, SpikeMonitor
from consumers.es_index import ALERT_MAPPINGS, DELIVERY_MAPPINGS, ensure_index
from consumers.webhooks import Attempt, WebhookDispatcher
from marketpulse.settings import Settings
from stream import metrics

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1


class Alerter:
    def __init__(self, settings: Settings, es: Elasticsearch | None = None, group_id: str | None = None,
                 from_time: datetime | None = None):
        self.s = settings
        k = settings.kafka
        self.group_id = group_id or k.alerter_group
        self.from_time = from_time
        self.es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
        self.config = DetectorConfig.from_settings(settings.alerts)
        self.consumer = KafkaConsumer(bootstrap_servers=k.bootstrap, group_id=self.group_id,
                                      client_id=f"{k.client_id}-alerter", enable_auto_commit=False,
                                      auto_offset_reset="earliest", max_poll_records=2000)
        self.producer = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all", linger_ms=5,
                                      compression_type="gzip", max_request_size=32 * 1024 * 1024)
        ensure_index(self.es, settings.elasticsearch.alerts_index, ALERT_MAPPINGS)
        ensure_index(self.es, settings.elasticsearch.deliveries_index, DELIVERY_MAPPINGS)
        self.webhooks = WebhookDispatcher(settings.alerts.webhooks,
                                          settings.alerts.webhook_secret.get_secret_value(),
                                          on_attempt=self._log_attempt)
        self.monitor = SpikeMonitor(self.config)
        self.partitions: list[TopicPartition] = []
        self.fired: list[dict] = []
        self._partition_time: dict[int, float] = {}  # latest event time read per partition
        self._last_event_wall = time.monotonic()
        self._last_snapshot = time.monotonic()

    # -- start: snapshot or rebuild ---------------------------------------------------------------
    def start(self) -> None:
        topic = self.s.kafka.topics.events
        parts = self.consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 30
        while not parts and time.monotonic() < deadline:
            time.sleep(0.5)
            parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"topic {topic} does not exist")
        self.partitions = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)
        snap = self._load_snapshot()
        if snap is not None:
            self.monitor = SpikeMonitor.from_dict(snap["monitor"], self.config)
            for tp in self.partitions:
                self.consumer.seek(tp, snap["offsets"].get(str(tp.partition), 0))
            log.info("resumed from snapshot at offsets %s", snap["offsets"])
            return
        since = self.from_time or datetime.fromtimestamp(
            time.time() - self.config.baseline_buckets * self.config.bucket_s, tz=timezone.utc)
        found = self.consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in self.partitions})
        ends = self.consumer.end_offsets(self.partitions)
        for tp in self.partitions:
            self.consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        log.info("no snapshot for %s: rebuilding from events since %s", self.group_id, since.isoformat())

    def _load_snapshot(self) -> dict | None:
        topic = self.s.kafka.topics.alerter_state
        reader = KafkaConsumer(bootstrap_servers=self.s.kafka.bootstrap, enable_auto_commit=False,
                               group_id=None, max_partition_fetch_bytes=64 * 1024 * 1024,
                               fetch_max_bytes=64 * 1024 * 1024)
        try:
            parts = reader.partitions_for_topic(topic)
            if not parts:
                return None
            tps = [TopicPartition(topic, p) for p in parts]
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            ends = reader.end_offsets(tps)
            latest = None
            while any(reader.position(tp) < ends[tp] for tp in tps):
                for recs in reader.poll(timeout_ms=1000).values():
                    for r in recs:
                        if r.key == self.group_id.encode():
                            latest = r.value
            if latest is None:
                return None
            snap = json.loads(latest)
            return snap if snap.get("version") == SNAPSHOT_VERSION else None
        finally:
            reader.close()

    def snapshot(self) -> None:
        """Monitor state + the offsets it covers, then the group commit (for lag dashboards)."""
        offsets = {str(tp.partition): self.consumer.position(tp) for tp in self.partitions}
        body = json.dumps({"version": SNAPSHOT_VERSION, "group": self.group_id, "offsets": offsets,
                           "saved_at": datetime.now(timezone.utc).isoformat(),
                           "monitor": self.monitor.to_dict()}).encode()
        self.producer.send(self.s.kafka.topics.alerter_state, key=self.group_id.encode(), value=body)
        self.producer.flush()
        self.consumer.commit()
        self._last_snapshot = time.monotonic()

    # -- the loop ---------------------------------------------------------------------------------
    def poll_once(self, timeout_ms: int = 500) -> list[dict]:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for tp, recs in polled.items():
            for r in recs:
                try:
                    event = json.loads(r.value)
                    self.monitor.observe(event)
                    t = datetime.fromisoformat(event["published_at"]).timestamp()
                    self._partition_time[tp.partition] = max(t, self._partition_time.get(tp.partition, t))
                    n += 1
                except Exception as exc:  # the ES sink dead-letters these; the alerter skips them
                    log.warning("skipping unreadable event at %s:%d:%d (%s)", r.topic, r.partition, r.offset, exc)
        now = time.monotonic()
        if n:
            self._last_event_wall = now
            watermark = self._watermark()
            alerts = self.monitor.advance(watermark) if watermark is not None else []
        elif now - self._last_event_wall >= self.s.alerts.idle_flush_s and self.monitor.buckets.max_event_time:
            # A quiet stream must still close its last buckets: event time moves on with the clock.
            alerts = self.monitor.advance(self.monitor.buckets.max_event_time + (now - self._last_event_wall))
        else:
            alerts = []
        out = [self._publish(a) for a in alerts]
        if now - self._last_snapshot >= self.s.alerts.snapshot_interval_s:
            try:
                self.snapshot()
            except KafkaError as exc:  # broker away: keep detecting, save the state once it is back
                log.warning("snapshot postponed: %s", exc)
                self._last_snapshot = now
        return out

    def _watermark(self) -> float | None:
        """Event time every partition has reached: the slowest partition that still has a backlog.

        Catching up on a backlog, one poll may bring minutes of one partition before another's;
        taking the maximum event time would close buckets that the lagging partitions still feed.
        """
        ends = self.consumer.end_offsets(self.partitions)
        lagging = [tp.partition for tp in self.partitions if self.consumer.position(tp) < ends[tp]]
        if any(p not in self._partition_time for p in lagging):
            return None  # a partition with a backlog was not read yet: its events may be older
        times = [self._partition_time[p] for p in lagging] or list(self._partition_time.values())
        return min(times) if lagging else max(times)

    def _publish(self, alert) -> dict:
        doc = alert.model_dump(mode="json")
        doc["fired_at"] = datetime.now(timezone.utc).isoformat()
        self.producer.send(self.s.kafka.topics.alerts, key=alert.id.encode(), value=json.dumps(doc).encode())
        self.es.index(index=self.s.elasticsearch.alerts_index, id=alert.id, document=doc, refresh="wait_for")
        self.webhooks.submit(doc)
        metrics.ALERTS.labels(alert.key_type, alert.severity).inc()
        log.warning("ALERT %s %s %s observed %.1f expected %.1f score %.1f", alert.severity, alert.status,
                    alert.key, alert.observed, alert.expected, alert.score)
        self.fired.append(doc)
        return doc

    def _log_attempt(self, a: Attempt) -> None:
        doc: dict[str, Any] = a.as_dict()
        self.producer.send(self.s.kafka.topics.webhook_deliveries, key=a.delivery_id.encode(),
                           value=json.dumps(doc).encode())
        self.es.index(index=self.s.elasticsearch.deliveries_index, id=f"{a.delivery_id}:{a.attempt}",
                      document=doc)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        self.start()
        backoff = 0.5
        while not stop.is_set():
            try:
                self.poll_once()
                backoff = 0.5
            except KafkaError as exc:  # broker restarting: state and offsets stay in memory until it is back
                log.warning("kafka unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self.close()

    def close(self) -> None:
        self.snapshot()
        self.webhooks.close(timeout=10)
        self.producer.flush(); self.producer.close()
        self.consumer.close()
