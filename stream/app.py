"""The faust-streaming worker: raw topics -> micro-batches -> BatchProcessor -> labeled / dead-letter.

Offsets of a micro-batch are acknowledged only after every one of its output records was delivered
(acks=all): a record the broker refuses is sent again until it is accepted, and a batch interrupted
on its way (SIGTERM, a crash) is never acknowledged, so it is read again rather than lost. The
Elasticsearch sink's deterministic _id turns that re-delivery into an overwrite, not a duplicate.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

import faust

from marketpulse import kafka_client
from marketpulse.settings import KafkaSettings, Settings
from marketpulse.wire import InRecord, OutRecord

if TYPE_CHECKING:
    from stream.processor import BatchProcessor

log = logging.getLogger(__name__)


def _in_record(m) -> InRecord:
    headers = m.headers.items() if isinstance(m.headers, dict) else (m.headers or ())
    return InRecord(m.value, m.key, m.topic, m.partition, m.offset, tuple(headers))


class DeliveryAbandoned(Exception):
    """The worker is stopping while output records are still refused: the batch stays unacknowledged."""


async def deliver(send: Callable[[OutRecord], Awaitable[Any]], records: Sequence[OutRecord], *,
                  stopping: Callable[[], bool] = lambda: False, wait_s: float = 0.5, max_wait_s: float = 30.0,
                  sleep=asyncio.sleep) -> int:
    """Sends ``records`` until the broker has acknowledged every one; returns how many rounds of
    re-sending that took. ``send`` queues one record and returns the future of its delivery.

    Only the records whose delivery failed are sent again, after a wait that doubles from ``wait_s``
    up to ``max_wait_s``. It never gives up on its own: a topic that keeps refusing writes stalls the
    worker, and the raw records wait in Kafka, rather than a batch being acknowledged without its
    output. Once ``stopping()`` is true it raises DeliveryAbandoned instead of waiting on (faust waits
    for in-flight batches on SIGTERM, so the worker would never stop). A dead letter is sent twice only
    if a send that failed had been appended all the same (a timeout after the broker wrote it); a
    refused record is not appended."""
    pending = list(records)
    rounds, wait = 0, wait_s
    while True:
        futures, failed = [], []
        for rec in pending:
            try:
                futures.append((rec, await send(rec)))
            except Exception as exc:  # refused before it was even queued
                failed.append((rec, exc))
        results = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        failed += [(rec, res) for (rec, _), res in zip(futures, results) if isinstance(res, BaseException)]
        if not failed:
            return rounds
        rounds += 1
        per_topic = ", ".join(f"{n} to {t}" for t, n in Counter(rec.topic for rec, _ in failed).items())
        log.warning("%d of %d output records not delivered (%s; %r); the batch stays unacknowledged, "
                    "sending them again in %.1f s", len(failed), len(pending), per_topic, failed[0][1], wait)
        pending = [rec for rec, _ in failed]
        if not stopping():
            await sleep(wait)  # the worker passes one that returns early when it stops
        if stopping():
            raise DeliveryAbandoned(f"stopping with {len(pending)} output records not delivered ({per_topic})")
        wait = min(max_wait_s, wait * 2)


def never_acknowledge(messages) -> None:
    """Keeps these messages' offsets from being committed by this process. faust's take_events
    acknowledges a batch in a ``finally``, so also when the agent is stopped or crashes in the middle
    of it: a message already marked acknowledged makes that a no-op for the consumer, the commit stops
    before it, and the next reader of the partition reads it again."""
    for m in messages:
        m.acked = True


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """kafka.security for aiokafka: the same TLS context as every other client (kafka_client)."""
    sec = kafka.security
    ctx = kafka_client.ssl_context(sec)
    if sec.uses_sasl:
        return faust.SASLCredentials(username=sec.username,
                                     password=sec.password.get_secret_value() if sec.password else None,
                                     ssl_context=ctx, mechanism=sec.sasl_mechanism)
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def create_app(settings: Settings, processor: "BatchProcessor") -> faust.App:
    k = settings.kafka
    datadir = settings.state_dir / "faust" / k.worker_group
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        k.worker_group,
        broker=f"kafka://{k.bootstrap}",
        datadir=str(datadir),
        store="memory://",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_partitions=k.topics.partitions,
        topic_allow_declare=False,
        broker_commit_interval=1.0,
        # Notice a restarted broker's partitions within half a minute (the default is 5 minutes).
        consumer_metadata_max_age_ms=30_000,
        producer_metadata_max_age_ms=30_000,
        stream_buffer_maxsize=max(4 * settings.batch.max_size, 256),
        broker_credentials=broker_credentials(k),
    )
    raw = app.topic(*k.topics.raw(), key_type=bytes, value_type=bytes)
    events = app.topic(k.topics.events, key_type=bytes, value_type=bytes)
    deadletter = app.topic(k.topics.deadletter, key_type=bytes, value_type=bytes)
    out_topics = {events.get_topic_name(): events, deadletter.get_topic_name(): deadletter}
    # One model thread: inference runs off the event loop so consuming goes on meanwhile.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    async def send(o: OutRecord):
        # Wait on faust's own promise: topic.send() returns the client's future and leaves the
        # promise's error unread, logged as "exception was never retrieved" once collected.
        topic = out_topics[o.topic]
        promise = topic.as_future_message(key=o.key, value=o.value, headers=list(o.headers))
        await topic.publish_message(promise)
        return promise

    @app.agent(raw, name="label")
    async def label(stream):
        loop = asyncio.get_running_loop()
        within = settings.batch.max_latency_ms / 1000
        async for batch in stream.take_events(settings.batch.max_size, within=within):
            try:
                records = [_in_record(ev.message) for ev in batch]
                result = await loop.run_in_executor(executor, processor.process, records)
                # Delivered, every record, before take_events acks the batch's offsets.
                await deliver(send, result.out_records(k.topics.events),
                              stopping=lambda: app.should_stop, sleep=app.sleep)
            except DeliveryAbandoned as exc:
                # Nothing read will be processed any more: neither this batch nor what was buffered
                # behind it may be committed, and faust's wait for in-flight messages must not wait on them.
                never_acknowledge(list(app.consumer.unacked))
                never_acknowledge(ev.message for ev in batch)
                log.warning("%s; the batch is left unacknowledged, to be read again", exc)
                return
            except BaseException:
                never_acknowledge(ev.message for ev in batch)
                raise

    return app


def run_worker(settings: Settings, make_processor: Callable[[], "BatchProcessor"]) -> None:
    """Blocks until SIGTERM/SIGINT; faust finishes in-flight work and commits before exiting."""
    # The model loads before the worker joins the consumer group, so no partition waits on it.
    processor = make_processor()
    log.info("model ready: %s", processor.classifier.model_version)
    app = create_app(settings, processor)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
