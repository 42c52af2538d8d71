"""Durable webhook delivery: the alerts topic is the outbox.

Each endpoint has its own consumer of the alerts topic (group ``<alerter group>-webhook-<url hash>``)
on the shared consumer loop, reading one alert per step: deliver it (retrying until a 2xx or a final
failure) → flush the attempt records to the deliveries topic → commit. A process killed while an
alert is still being retried has not committed it, so the next process delivers it; a slow or dead
endpoint holds back only its own consumer.

What is final is remembered: at start, each consumer reads the recent delivery log (the deliveries
topic) so that an alert record the alerter published twice (a restart from an older snapshot fires
the same incident again) is not delivered twice, and an interrupted delivery goes on with its
attempt count and its retry budget instead of starting over. The only duplicate left is a 2xx whose
commit did not happen (a kill in between); it carries the same signed delivery id, for the
receiver to recognise.

A new endpoint starts at the end of the topic (its consumer commits that position before the alerter
publishes anything), so adding one does not send it the history.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.es_index import DELIVERY_MAPPINGS, IndexCopy
from consumers.webhooks import Attempt, EndpointDelivery, Resume, delivery_id
from marketpulse import metrics, wire
from marketpulse.consumer_loop import ConsumerLoop, KafkaSink, KafkaSource, Sink, Source
from marketpulse.settings import Settings, WebhookEndpoint
from marketpulse.wire import InRecord, OutRecord
from marketpulse import kafka_client

log = logging.getLogger(__name__)
HISTORY_WINDOW_S = 24 * 3600  # how far back the delivery log is read at start
HISTORY_MAX = 100_000


def group_for(alerter_group: str, endpoint: WebhookEndpoint) -> str:
    return f"{alerter_group}-webhook-{hashlib.sha1(endpoint.url.encode()).hexdigest()[:8]}"


class DeliveryHistory:
    """Delivery ids seen in the log: attempts made, the first attempt's time, and whether final."""

    def __init__(self, limit: int = HISTORY_MAX):
        self.limit = limit
        self._by_id: dict[str, tuple[Resume, bool]] = {}
        self._lock = threading.Lock()  # shared by the endpoints' threads (ids include the endpoint)

    def record(self, a: Attempt) -> None:
        at = datetime.fromisoformat(a.at).timestamp()
        with self._lock:
            resume, final = self._by_id.pop(a.delivery_id, (Resume(), False))
            first = at if resume.first_at is None else min(resume.first_at, at)
            self._by_id[a.delivery_id] = (Resume(max(resume.attempts, a.attempt), first), final or a.final)
            while len(self._by_id) > self.limit:  # the oldest-touched go first
                del self._by_id[next(iter(self._by_id))]

    def is_final(self, did: str) -> bool:
        return self._by_id.get(did, (None, False))[1]

    def resume(self, did: str) -> Resume:
        return self._by_id.get(did, (Resume(), False))[0]

    def __len__(self) -> int:
        return len(self._by_id)


class DeliveryHandler:
    """The consumer-loop handler of one endpoint: deliver each alert, log every attempt, and let the
    loop commit only after the attempts are on the deliveries topic."""

    def __init__(self, delivery: EndpointDelivery, log_sink: Sink, deliveries_topic: str,
                 history: DeliveryHistory | None = None, index: IndexCopy | None = None):
        self.delivery, self.log_sink, self.deliveries_topic = delivery, log_sink, deliveries_topic
        self.history = history or DeliveryHistory()
        self.index = index
        delivery.on_attempt = self._log_attempt

    def handle(self, records: list[InRecord]) -> None:
        for r in records:
            try:
                alert = wire.decode_alert_document(r)
            except wire.WireError as exc:
                log.warning("skipping unreadable alert at %s:%d:%d (%s)", r.topic, r.partition, r.offset, exc)
                metrics.ALERTER_SKIPPED.labels(exc.rejection.reason).inc()
                continue
            did = delivery_id(alert, self.delivery.ep)
            if self.history.is_final(did):
                log.info("alert %s already delivered or given up for %s: not sent again", did, self.delivery.ep.masked_url)
                continue
            self.delivery.deliver(alert, self.history.resume(did))

    def flush(self) -> None:
        self.log_sink.flush()
        if self.index is not None and self.index.pending:
            self.index.retry()

    def commit(self, source: Source) -> None:
        source.commit()

    def reset(self) -> None:
        """Nothing to forget: the history holds only attempts that were made."""

    def _log_attempt(self, a: Attempt) -> None:
        self.history.record(a)
        doc: dict[str, Any] = a.as_dict()
        self.log_sink.send(OutRecord(self.deliveries_topic, a.delivery_id.encode(), json.dumps(doc).encode()))
        if self.index is not None:
            self.index.store(f"{a.delivery_id}:{a.attempt}", doc)


def read_history(settings: Settings, history: DeliveryHistory, since_s: float = HISTORY_WINDOW_S) -> None:
    """Fills ``history`` from the deliveries topic's last ``since_s`` seconds."""
    topic = settings.kafka.topics.webhook_deliveries
    reader = kafka_client.consumer(settings.kafka, enable_auto_commit=False, group_id=None)
    try:
        parts = reader.partitions_for_topic(topic)
        if not parts:
            return
        tps = [TopicPartition(topic, p) for p in parts]
        reader.assign(tps)
        found = reader.offsets_for_times({tp: int((time.time() - since_s) * 1000) for tp in tps})
        ends = reader.end_offsets(tps)
        for tp in tps:
            reader.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        for r in kafka_client.read_to_end(reader, tps):
            try:
                history.record(Attempt(**json.loads(r.value)))
            except (TypeError, ValueError) as exc:
                log.warning("unreadable delivery log record at %d:%d (%s)", r.partition, r.offset, exc)
    finally:
        reader.close()


class _AlertsSource(KafkaSource):
    """The alerts topic's partitions, assigned (no group rebalances: a delivery may take an hour of
    retries) with the endpoint's group offsets. A new group starts at the end of the topic."""

    def __init__(self, settings: Settings, group: str):
        k = settings.kafka
        super().__init__(kafka_client.consumer(k, group_id=group, enable_auto_commit=False,
                                               client_id=f"{k.client_id}-webhooks", max_poll_records=1,
                                               auto_offset_reset="latest"))
        self.topic = k.topics.alerts

    def start(self) -> None:
        tps = kafka_client.topic_partitions(self.consumer, self.topic)
        self.consumer.assign(tps)
        fresh = {tp: OffsetAndMetadata(self.consumer.position(tp), "", -1)
                 for tp in tps if self.consumer.committed(tp) is None}
        if fresh:
            self.consumer.commit(fresh)


class WebhookOutbox:
    """Every endpoint's delivery loop, on threads of the alerter process."""

    def __init__(self, settings: Settings, group: str, producer: Any, es: Any, stop: threading.Event):
        self.s, self.stop = settings, stop
        self.loops: list[tuple[_AlertsSource, DeliveryHandler]] = []
        self._threads: list[threading.Thread] = []
        endpoints = settings.alerts.webhooks
        if not endpoints:
            return
        history = DeliveryHistory()
        read_history(settings, history)
        secret = settings.alerts.webhook_secret.get_secret_value()
        for ep in endpoints:
            handler = DeliveryHandler(EndpointDelivery(ep, secret, stop), KafkaSink(producer),
                                      settings.kafka.topics.webhook_deliveries, history=history,
                                      index=IndexCopy(es, settings.elasticsearch.deliveries_index, DELIVERY_MAPPINGS))
            self.loops.append((_AlertsSource(settings, group_for(group, ep)), handler))

    def start(self) -> None:
        """Positions first (a new endpoint's end of topic is committed before any alert can be
        published), then one thread per endpoint."""
        for source, _ in self.loops:
            source.start()
        for i, (source, handler) in enumerate(self.loops):
            loop = ConsumerLoop(source, handler, name=f"webhook-{i}")
            t = threading.Thread(target=loop.run, args=(self.stop,), daemon=True, name=f"webhook-{i}")
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 10.0) -> None:
        for t in self._threads:
            t.join(timeout)
        for source, handler in self.loops:
            try:
                handler.flush()  # the attempts of an interrupted delivery, for the next process to resume
            except Exception as exc:
                log.warning("delivery log not flushed at shutdown (%s)", exc)
            handler.delivery.close()
            source.close()
