"""Labeled events -> Elasticsearch, at least once, without duplicates.

A poll's records are bulk-indexed with a deterministic _id (source:id) and the consumer commits its
offsets only after Elasticsearch acknowledged every document of the poll: a crash re-delivers and
re-writes the same _ids. Throttling (429) and server errors (5xx, connection loss) are retried with
backoff until they pass; documents Elasticsearch rejects for good go to the dead-letter topic.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from consumers.es_index import daily_index, ensure_event_template, to_document
from marketpulse.settings import Settings
from stream import metrics
from stream.validate import Rejection, deadletter_record

log = logging.getLogger(__name__)
RETRYABLE = {429, 500, 502, 503, 504}


class EsSink:
    def __init__(self, settings: Settings, es: Elasticsearch | None = None, group_id: str | None = None,
                 max_backoff_s: float = 10.0):
        self.s = settings
        self.es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
        self.group_id = group_id or settings.kafka.es_sink_group
        self.max_backoff_s = max_backoff_s
        k = settings.kafka
        self.consumer = KafkaConsumer(
            k.topics.events, bootstrap_servers=k.bootstrap, group_id=self.group_id,
            client_id=f"{k.client_id}-es-sink", enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=settings.elasticsearch.bulk_max_docs, max_poll_interval_ms=600_000)
        self.producer = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all", linger_ms=5)
        self._template_ready = False
        self.indexed = 0

    # -- one poll -> one bulk -> one commit ---------------------------------------------------
    def poll_once(self, timeout_ms: int = 500) -> int:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        records = [r for batch in polled.values() for r in batch]
        if not records:
            return 0
        self._ensure_template()
        actions: list[tuple[Any, dict, dict]] = []
        for r in records:
            try:
                event = json.loads(r.value)
                index = daily_index(self.s.elasticsearch, datetime.fromisoformat(event["published_at"]))
                doc_id = f"{event['source']}:{event['id']}"
            except Exception as exc:
                self._deadletter(r, "not_a_labeled_event", f"{type(exc).__name__}: {exc}")
                continue
            actions.append((r, {"index": {"_index": index, "_id": doc_id}}, to_document(event)))
        self._bulk_until_acknowledged(actions)
        self.producer.flush()  # dead letters delivered before the offsets move on
        try:
            self.consumer.commit()
        except (CommitFailedError, KafkaError) as exc:  # rebalance or broker away: records come again, same _ids
            log.warning("commit failed (%s); the batch will be re-delivered and overwritten", exc)
        try:
            self._update_lag()
        except KafkaError as exc:
            log.debug("lag not updated: %s", exc)
        return len(records)

    def _bulk_until_acknowledged(self, actions: list[tuple[Any, dict, dict]]) -> None:
        backoff = 0.2
        while actions:
            body: list[dict] = []
            for _, meta, doc in actions:
                body += [meta, doc]
            t0 = time.perf_counter()
            try:
                resp = self.es.bulk(operations=body, refresh=False)
            except (TransportError, ApiError) as exc:  # ES down, timeout or a whole-request 429/5xx
                status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
                if isinstance(exc, ApiError) and status not in RETRYABLE:
                    raise
                log.warning("bulk failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            metrics.ES_BULK_LATENCY.observe(time.perf_counter() - t0)
            retry = []
            for (rec, meta, doc), item in zip(actions, resp["items"]):
                res = item["index"]
                status = res.get("status", 500)
                if status < 300:
                    self.indexed += 1
                    metrics.ES_DOCS.inc()
                elif status in RETRYABLE:
                    retry.append((rec, meta, doc))
                else:
                    err = res.get("error", {})
                    self._deadletter(rec, "es_rejected", f"{err.get('type')}: {err.get('reason')}")
            actions = retry
            if retry:
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _ensure_template(self) -> None:
        if not self._template_ready:
            ensure_event_template(self.es, self.s.elasticsearch)
            self._template_ready = True

    def _deadletter(self, rec, reason: str, detail: str) -> None:
        metrics.DEADLETTERED.labels("es_sink", reason).inc()
        dl = {"stage": "es_sink", **deadletter_record(rec.value, Rejection(reason, detail), rec.topic, rec.partition,
                                                       rec.offset)}
        self.producer.send(self.s.kafka.topics.deadletter, key=rec.key, value=json.dumps(dl).encode())

    def _update_lag(self) -> None:
        parts = self.consumer.assignment()
        if not parts:
            return
        ends = self.consumer.end_offsets(list(parts))
        for tp in parts:
            metrics.CONSUMER_LAG.labels(self.group_id, tp.topic, tp.partition).set(
                max(0, ends[tp] - self.consumer.position(tp)))

    # -- lifecycle --------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        log.info("es sink consuming %s as group %s", self.s.kafka.topics.events, self.group_id)
        backoff = 0.5
        while not stop.is_set():
            try:
                self.poll_once()
                backoff = 0.5
            except KafkaError as exc:  # broker restarting or unreachable: nothing uncommitted is lost
                log.warning("kafka unavailable (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        self.close()

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(); self.producer.close()
