"""The live alerter: labeled events -> SpikeMonitor -> alerts topic (-> webhooks), alerts index.

One alerter per consumer group reads every partition of the events topic (the market key spans
them all), so it assigns partitions itself instead of joining a rebalancing group. It runs on the
shared consumer loop; its "commit" is a snapshot of its state (open buckets, every detector)
together with the offsets it covers, written to a compacted Kafka topic. A restart loads the latest
snapshot and seeks to exactly those offsets, so no event is counted twice or missed. Without a
snapshot it rebuilds its baseline from the events topic, starting one baseline window back.

Event time comes from the shared ``EventClock``: the slowest partition with a backlog while
catching up, events dated beyond the future-skew bound skipped (they would close every window a
real event falls into), and time moving on with the wall clock when the stream is quiet.

Alert ids are deterministic (key + incident start): re-delivered alerts overwrite in Elasticsearch.
The alerts topic is the webhooks' outbox (``consumers.webhook_outbox``): their delivery loops run
on threads of this process, each committing an alert only once it is delivered or given up.

Before an alert is published, its top events get the words that made them negative
(``consumers.alert_explainer``, unless ``alerts.explain_top_events`` is off); an explanation that
fails leaves them out, it never holds the alert back.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from elasticsearch import Elasticsearch
from kafka import TopicPartition

from consumers import alert_explainer
from consumers.alerting import DetectorConfig, SpikeMonitor
from consumers.es_index import ALERT_MAPPINGS, IndexCopy
from consumers.webhook_outbox import WebhookOutbox
from marketpulse import metrics, wire
from marketpulse.consumer_loop import ConsumerLoop, KafkaSink, KafkaSource, Sink
from marketpulse.event_clock import EventClock
from marketpulse.schemas import Alert
from marketpulse.settings import Settings
from marketpulse.wire import InRecord, OutRecord
from marketpulse import kafka_client

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1


class AlerterSource(Protocol):
    def poll(self, timeout_ms: int) -> list[InRecord]: ...

    def commit(self) -> None: ...

    def positions(self) -> dict[int, int]: ...

    def lagging(self) -> list[int]: ...


class AlertHandler:
    """The alerter's work per poll, with its outputs injected (Kafka + Elasticsearch in the process;
    in-memory ones in tests). ``explain`` fills in an alert's top-event explanations before it is
    published (``alert_explainer.from_settings``); None publishes alerts as the monitor built them."""

    def __init__(self, settings: Settings, out: Sink, *, store_alert: Callable[[dict[str, Any]], None],
                 group_id: str | None = None,
                 monitor: SpikeMonitor | None = None, clock: EventClock | None = None,
                 explain: Callable[[Alert], Alert] | None = None):
        self.s = settings
        a = settings.alerts
        self.group_id = group_id or settings.kafka.alerter_group
        self.config = DetectorConfig.from_settings(a)
        self.monitor = monitor or SpikeMonitor(self.config)
        self.clock = clock or EventClock(a.allowed_lateness_s, settings.event_time.max_future_skew_s)
        self.out = out
        self.store_alert = store_alert
        self.explain = explain
        self._last_snapshot = time.monotonic()

    # -- the loop's steps ---------------------------------------------------------------------------
    def handle(self, records: list[InRecord], lagging: Callable[[], list[int]] = list) -> list[dict[str, Any]]:
        n = 0
        for r in records:
            try:
                event = wire.decode_labeled(r)
            except wire.WireError as exc:  # the ES sink dead-letters these; the alerter skips them
                log.warning("skipping unreadable event at %s:%d:%d (%s)", r.topic, r.partition, r.offset, exc)
                metrics.ALERTER_SKIPPED.labels(exc.rejection.reason).inc()
                continue
            if not self.clock.observe(r.partition, event.published_at.timestamp()):
                log.warning("skipping event %s dated %s: beyond the %d s future-skew bound", event.doc_id,
                            event.published_at.isoformat(), self.s.event_time.max_future_skew_s)
                metrics.ALERTER_SKIPPED.labels("future_dated").inc()
                continue
            self.monitor.observe(event)
            n += 1
        # A quiet stream must still close its last buckets: event time moves on with the clock.
        watermark = self.clock.watermark(lagging()) if n else self.clock.idle_watermark(self.s.alerts.idle_flush_s)
        alerts = self.monitor.advance(watermark) if watermark is not None else []
        return [self._publish(a) for a in alerts]

    def flush(self) -> None:
        self.out.flush()

    def checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_snapshot >= self.s.alerts.snapshot_interval_s

    def snapshot_record(self, positions: dict[int, int]) -> OutRecord:
        """Monitor state + the offsets it covers, keyed by the group (compacted topic)."""
        body = json.dumps({"version": SNAPSHOT_VERSION, "group": self.group_id,
                           "offsets": {str(p): o for p, o in positions.items()},
                           "saved_at": datetime.now(timezone.utc).isoformat(),
                           "monitor": self.monitor.to_dict()}).encode()
        return OutRecord(self.s.kafka.topics.alerter_state, self.group_id.encode(), body)

    def checkpoint(self, source: AlerterSource) -> None:
        """State and offsets durable first, then the group commit (for lag dashboards)."""
        self.out.send(self.snapshot_record(source.positions()))
        self.out.flush()
        source.commit()
        self._last_snapshot = time.monotonic()

    # -- outputs ------------------------------------------------------------------------------------
    def _publish(self, alert: Alert) -> dict[str, Any]:
        if self.explain is not None:
            try:
                alert = self.explain(alert)
            except Exception:  # the explainer handles its own failures; whatever slips through must not cost the alert
                log.exception("explaining alert %s failed; publishing it without explanations", alert.id)
        doc = wire.alert_document(alert, fired_at=datetime.now(timezone.utc))
        self.out.send(wire.encode_alert(doc, self.s.kafka.topics.alerts))  # and so to the webhooks
        self.store_alert(doc)  # may wait for Elasticsearch: the topic does not
        metrics.ALERTS.labels(alert.key_type, alert.severity).inc()
        log.warning("ALERT %s %s %s observed %.1f expected %.1f score %.1f", alert.severity, alert.status,
                    alert.key, alert.observed, alert.expected, alert.score)
        return doc


class _LoopAdapter:
    """AlertHandler on the consumer loop: the lagging partitions for the watermark, and a snapshot
    (when due) as the commit."""

    def __init__(self, handler: AlertHandler, source: AlerterSource, index: IndexCopy | None = None):
        self.handler, self.source, self.index = handler, source, index

    def handle(self, records: list[InRecord]) -> None:
        self.handler.handle(records, self.source.lagging if records else list)

    def flush(self) -> None:
        self.handler.flush()
        if self.index is not None and self.index.pending:
            self.index.retry()

    def commit(self, source: Any) -> None:
        if self.handler.checkpoint_due():
            self.handler.checkpoint(self.source)

    def reset(self) -> None:
        """Nothing to forget: the monitor holds every event read, and a restart resumes from the
        snapshot's offsets (see ``_AssignedSource``)."""


class _AssignedSource(KafkaSource):
    """The alerter's partitions: a failed step does not rewind, since the monitor already counted
    what was read; the next snapshot covers it (the group offsets are only for lag dashboards)."""

    def rewind(self) -> None:
        pass


class Alerter:
    """The `marketpulse alerter` process."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None, group_id: str | None = None,
                 from_time: datetime | None = None):
        self.s = settings
        k = settings.kafka
        self.group_id = group_id or k.alerter_group
        self.from_time = from_time
        self.es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
        self.consumer = kafka_client.consumer(k, group_id=self.group_id,
                                              client_id=f"{k.client_id}-alerter", enable_auto_commit=False,
                                              auto_offset_reset="earliest", max_poll_records=2000)
        self.producer = kafka_client.producer(k, acks="all", linger_ms=5,
                                              compression_type="gzip", max_request_size=32 * 1024 * 1024)
        # Alerts are found by id in the index right after they fire (dashboards, tests): wait_for.
        self.alert_index = IndexCopy(self.es, settings.elasticsearch.alerts_index, ALERT_MAPPINGS, refresh="wait_for")
        self.sink = KafkaSink(self.producer)
        self.handler = AlertHandler(settings, self.sink, store_alert=lambda doc: self.alert_index.store(doc["id"], doc),
                                    group_id=self.group_id, explain=alert_explainer.from_settings(settings))
        self.source = _AssignedSource(self.consumer)
        self.stop = threading.Event()
        self.outbox: WebhookOutbox | None = None
        self.alert_index.retry()  # creates the index now if Elasticsearch is there

    # -- start: snapshot or rebuild ---------------------------------------------------------------
    def start(self) -> None:
        partitions = kafka_client.topic_partitions(self.consumer, self.s.kafka.topics.events)
        self.consumer.assign(partitions)
        snap = self._load_snapshot()
        if snap is not None:
            self.handler.monitor = SpikeMonitor.from_dict(snap["monitor"], self.handler.config)
            for tp in partitions:
                self.consumer.seek(tp, snap["offsets"].get(str(tp.partition), 0))
            log.info("resumed from snapshot at offsets %s", snap["offsets"])
            return
        config = self.handler.config
        since = self.from_time or datetime.fromtimestamp(
            time.time() - config.baseline_buckets * config.bucket_s, tz=timezone.utc)
        found = self.consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        ends = self.consumer.end_offsets(partitions)
        for tp in partitions:
            self.consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        log.info("no snapshot for %s: rebuilding from events since %s", self.group_id, since.isoformat())

    def _load_snapshot(self) -> dict | None:
        topic = self.s.kafka.topics.alerter_state
        reader = kafka_client.consumer(self.s.kafka, enable_auto_commit=False, group_id=None,
                                       max_partition_fetch_bytes=64 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
        try:
            parts = reader.partitions_for_topic(topic)
            if not parts:
                return None
            tps = [TopicPartition(topic, p) for p in parts]
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            latest = None
            for r in kafka_client.read_to_end(reader, tps):
                if r.key == self.group_id.encode():
                    latest = r.value
            if latest is None:
                return None
            snap = json.loads(latest)
            return snap if snap.get("version") == SNAPSHOT_VERSION else None
        finally:
            reader.close()

    # -- lifecycle --------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or self.stop
        self.outbox = WebhookOutbox(self.s, self.group_id, self.producer, self.es, self.stop)
        self.outbox.start()  # before any alert: a new endpoint's position is the end of the topic now
        self.start()
        try:
            ConsumerLoop(self.source, _LoopAdapter(self.handler, self.source, self.alert_index),
                         name="alerter").run(self.stop)
        finally:
            self.close()

    def close(self) -> None:
        self.stop.set()
        self.handler.checkpoint(self.source)
        if self.outbox is not None:
            self.outbox.close(timeout=10)
        self.producer.flush()
        self.producer.close()
        self.consumer.close()
