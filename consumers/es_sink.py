"""Labeled events -> Elasticsearch, at least once, without duplicates.

Runs on the shared consumer loop (poll -> handle -> flush -> commit): a poll's records are decoded
at this edge, bulk-indexed with the event's deterministic ``_id`` on flush, and the offsets are
committed only after Elasticsearch acknowledged every document of the poll: a crash re-delivers
and re-writes the same ``_id``s. Throttling (429), server errors (5xx, connection loss) and write
blocks on an index or the cluster (``cluster_block_exception``: ``index.blocks.write``, the
flood-stage watermark's ``read_only_allow_delete``) are retried with backoff until they pass or the
stop signal comes; records that are not labeled events and documents Elasticsearch refuses for good
go to the dead-letter topic.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from elasticsearch import ApiError, Elasticsearch, TransportError
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError

from consumers.es_index import daily_index, ensure_event_template, to_document
from marketpulse import metrics, wire
from marketpulse.consumer_loop import ConsumerLoop, KafkaSink, KafkaSource, Sink, Source, call_retrying
from marketpulse.settings import Settings
from marketpulse.wire import InRecord, Rejection
from marketpulse import kafka_client

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE = {429, 500, 502, 503, 504}
FIRST_BACKOFF_S = 0.2

# A write block (index.blocks.write / read_only, the flood-stage watermark's read_only_allow_delete,
# a cluster-wide block) refuses every write until an operator or the disk lifts it; Elasticsearch
# answers 403 or 429 with this type. The documents are not at fault: they wait, like throttled ones.
BLOCKED = "cluster_block_exception"

# A whole bulk request refused with these is about its documents (one too large, an _id over
# 512 bytes): halve the batch until the culprit is alone, and dead-letter it.
DOCUMENT_FAULT = {400, 413}


def passes(status: int, error: dict | None) -> bool:
    """A refusal that passes with time (throttling, a server error, a write block), not a fault of
    the document (a mapping error, 400) that no retry fixes."""
    return status in RETRYABLE or (error or {}).get("type") == BLOCKED


def _error_type(exc: ApiError) -> str | None:
    err = exc.body.get("error") if isinstance(exc.body, dict) else None
    return err.get("type") if isinstance(err, dict) else None


class _Retryable(Exception):
    """The bulk request, or some of its documents, failed in a way that passes (ES away, 429, 5xx,
    a write block)."""


class _Refused(Exception):
    """The whole bulk request was refused because of (some of) its documents."""


class EsSinkHandler:
    """Decodes labeled events, bulk-writes them on ``flush``, dead-letters what cannot be stored."""

    def __init__(self, settings: Settings, es: Any, deadletters: Sink, stop: threading.Event,
                 max_backoff_s: float = 10.0, group_id: str | None = None):
        self.s = settings
        self.es = es
        self.deadletters = deadletters
        self.stop = stop
        self.max_backoff_s = max_backoff_s
        self.group_id = group_id or settings.kafka.es_sink_group
        self._actions: list[tuple[InRecord, dict, dict]] = []
        self._template_ready = False

    def handle(self, records: list[InRecord]) -> None:
        for r in records:
            try:
                event = wire.decode_labeled(r)
            except wire.WireError as exc:
                self._deadletter(r, exc.rejection)
                continue
            meta = {"index": {"_index": daily_index(self.s.elasticsearch, event.published_at), "_id": event.doc_id}}
            self._actions.append((r, meta, to_document(event.model_dump(mode="json"))))

    def flush(self) -> None:
        if self._actions:
            self._ensure_template()
            self._write(self._actions)
            self._remove_other_copies(self._actions)
            self._actions = []
        self.deadletters.flush()  # dead letters delivered before the offsets move on

    def commit(self, source: Source) -> None:
        try:
            source.commit()
        except (CommitFailedError, KafkaError) as exc:  # rebalance or broker away: records come again, same _ids
            log.warning("commit failed (%s); the batch will be re-delivered and overwritten", exc)

    def reset(self) -> None:
        self._actions = []

    # -- Elasticsearch ------------------------------------------------------------------------------
    def _write(self, actions: list[tuple[InRecord, dict, dict]]) -> None:
        """Every document acknowledged or dead-lettered; a refused request is split to find why."""
        try:
            self._bulk_until_acknowledged(actions)
        except _Refused as exc:
            if len(actions) == 1:
                self._deadletter(actions[0][0], Rejection("es_rejected", str(exc)))
                return
            mid = len(actions) // 2
            self._write(actions[:mid])
            self._write(actions[mid:])

    def _remove_other_copies(self, actions: list[tuple[InRecord, dict, dict]]) -> None:
        """An event is stored once under the alias: the index is picked by its publication day, so a
        re-sent event whose time moved to another day would otherwise stay in both day indices. The
        copy under the newest write wins; older copies elsewhere are found (one ids-only search per
        index written) and deleted (search + bulk delete: delete-by-query is a module not every
        Elasticsearch has)."""
        by_index: dict[str, list[str]] = {}
        for _, meta, _doc in actions:
            by_index.setdefault(meta["index"]["_index"], []).append(meta["index"]["_id"])
        alias = self.s.elasticsearch.index_prefix

        def remove(index: str, ids: list[str]) -> None:
            query = {"bool": {"filter": [{"ids": {"values": ids}}], "must_not": [{"term": {"_index": index}}]}}
            try:
                hits = self.es.search(index=alias, query=query, source=False, size=len(ids))["hits"]["hits"]
                if hits:
                    body = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
                    self.es.bulk(operations=body, refresh=False)
                    log.info("removed %d older copies of re-sent events", len(hits))
            except ApiError as exc:  # answered, but refused: not worth holding the batch for
                log.warning("older copies of %d events not removed: %s", len(ids), exc)

        for index, ids in by_index.items():
            # ES away (TransportError): the documents are written, the cleanup waits for it
            self._retrying("removing older copies", lambda index=index, ids=ids: remove(index, ids),
                           on=(TransportError,))

    def _bulk_until_acknowledged(self, actions: list[tuple[InRecord, dict, dict]]) -> None:
        """Every document acknowledged or dead-lettered; those refused for a while (the whole request,
        or single documents: 429, 5xx, a write block) are sent again with backoff, the rest not."""
        pending = actions

        def attempt() -> None:
            nonlocal pending
            pending = self._bulk_once(pending)
            if pending:
                raise _Retryable(f"{len(pending)} document(s) not accepted yet")

        self._retrying("es bulk", attempt, on=(_Retryable,))

    def _bulk_once(self, actions: list[tuple[InRecord, dict, dict]]) -> list[tuple[InRecord, dict, dict]]:
        """One bulk request; returns the actions to send again."""
        body: list[dict] = []
        for _, meta, doc in actions:
            body += [meta, doc]
        t0 = time.perf_counter()
        items = self._bulk(body)
        metrics.ES_BULK_LATENCY.observe(time.perf_counter() - t0)
        retry = []
        blocked: dict[str, tuple[int, str]] = {}
        for action, item in zip(actions, items):
            res = item["index"]
            status = res.get("status", 500)
            err = res.get("error") or {}
            if status < 300:
                metrics.ES_DOCS.inc()
            elif passes(status, err):
                retry.append(action)
                if err.get("type") == BLOCKED:
                    n, _ = blocked.get(res.get("_index", "?"), (0, ""))
                    blocked[res.get("_index", "?")] = (n + 1, str(err.get("reason")))
            else:
                self._deadletter(action[0], Rejection("es_rejected", f"{err.get('type')}: {err.get('reason')}"))
        for index, (n, reason) in blocked.items():
            log.warning("index %s refuses writes (%s: %s): %d document(s) wait for the block to be lifted; "
                        "not dead-lettered, offsets not committed", index, BLOCKED, reason, n)
        return retry

    def _bulk(self, body: list[dict]) -> list[dict]:
        try:
            return self.es.bulk(operations=body, refresh=False)["items"]
        except (TransportError, ApiError) as exc:  # ES down, timeout or a whole-request 429/5xx
            status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
            if isinstance(exc, ApiError) and _error_type(exc) == BLOCKED:
                log.warning("Elasticsearch refuses writes (HTTP %s %s: %s): the batch waits for the block to "
                            "be lifted", status, BLOCKED, str(exc)[:300])
                raise _Retryable(f"HTTP {status} {BLOCKED}") from exc
            if isinstance(exc, ApiError) and status in DOCUMENT_FAULT:
                raise _Refused(f"HTTP {status}: {str(exc)[:500]}") from exc
            if isinstance(exc, ApiError) and status not in RETRYABLE:
                raise  # authentication, a missing permission: nothing a retry or a dead letter fixes
            raise _Retryable(type(exc).__name__) from exc

    def _retrying(self, what: str, fn: Callable[[], T], on: tuple[type[BaseException], ...]) -> T:
        """``fn`` again, with capped jittered backoff, while it raises ``on``; the stop signal ends a
        wait with ``Stopped``: nothing is committed, the records come again."""
        return call_retrying(self.stop, what, fn, on=on, max_backoff_s=self.max_backoff_s, initial_s=FIRST_BACKOFF_S)

    def _ensure_template(self) -> None:
        if not self._template_ready:
            ensure_event_template(self.es, self.s.elasticsearch)
            self._template_ready = True

    def _deadletter(self, rec: InRecord, rejection: Rejection) -> None:
        metrics.DEADLETTERED.labels("es_sink", rejection.reason).inc()
        self.deadletters.send(wire.encode_deadletter(rec, rejection, "es_sink", self.s.kafka.topics.deadletter))


class EsSink:
    """The `marketpulse sink` process: the events topic through ``EsSinkHandler`` on the consumer loop."""

    def __init__(self, settings: Settings, es: Elasticsearch | None = None, group_id: str | None = None,
                 max_backoff_s: float = 10.0):
        self.s = settings
        self.group_id = group_id or settings.kafka.es_sink_group
        self.max_backoff_s = max_backoff_s
        self.es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
        k = settings.kafka
        self.consumer = kafka_client.consumer(
            k, k.topics.events, group_id=self.group_id,
            client_id=f"{k.client_id}-es-sink", enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=settings.elasticsearch.bulk_max_docs, max_poll_interval_ms=600_000)
        self.producer = kafka_client.producer(k, acks="all", linger_ms=5)

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        handler = _LagReporting(EsSinkHandler(self.s, self.es, KafkaSink(self.producer), stop, self.max_backoff_s,
                                              self.group_id), self.consumer)
        log.info("es sink consuming %s as group %s", self.s.kafka.topics.events, self.group_id)
        try:
            ConsumerLoop(KafkaSource(self.consumer), handler, name="es sink",
                         max_backoff_s=self.max_backoff_s).run(stop)
        finally:
            self.close()

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush()
        self.producer.close()


class _LagReporting:
    """The sink handler, plus the consumer-lag gauge after each commit."""

    def __init__(self, inner: EsSinkHandler, consumer: KafkaConsumer):
        self.inner, self.consumer = inner, consumer

    def handle(self, records: list[InRecord]) -> None:
        self.inner.handle(records)

    def flush(self) -> None:
        self.inner.flush()

    def reset(self) -> None:
        self.inner.reset()

    def commit(self, source: Source) -> None:
        self.inner.commit(source)
        try:
            parts = self.consumer.assignment()
            if not parts:
                return
            ends = self.consumer.end_offsets(list(parts))
            for tp in parts:
                metrics.CONSUMER_LAG.labels(self.inner.group_id, tp.topic, tp.partition).set(
                    max(0, ends[tp] - self.consumer.position(tp)))
        except KafkaError as exc:
            log.debug("lag not updated: %s", exc)
