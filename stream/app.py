"""The faust-streaming worker: raw topics -> micro-batches -> BatchProcessor -> labeled / dead-letter.

Offsets of a micro-batch are acknowledged only after its output records were delivered (acks=all),
so a crash re-delivers rather than loses; the Elasticsearch sink's deterministic _id turns that
re-delivery into an overwrite, not a duplicate.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

import faust

from marketpulse.settings import Settings
from marketpulse.wire import InRecord

if TYPE_CHECKING:
    from stream.processor import BatchProcessor

log = logging.getLogger(__name__)


def _in_record(m) -> InRecord:
    headers = m.headers.items() if isinstance(m.headers, dict) else (m.headers or ())
    return InRecord(m.value, m.key, m.topic, m.partition, m.offset, tuple(headers))


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
    )
    raw = app.topic(*k.topics.raw(), key_type=bytes, value_type=bytes)
    events = app.topic(k.topics.events, key_type=bytes, value_type=bytes)
    deadletter = app.topic(k.topics.deadletter, key_type=bytes, value_type=bytes)
    out_topics = {events.get_topic_name(): events, deadletter.get_topic_name(): deadletter}
    # One model thread: inference runs off the event loop so consuming goes on meanwhile.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    @app.agent(raw, name="label")
    async def label(stream):
        loop = asyncio.get_running_loop()
        within = settings.batch.max_latency_ms / 1000
        async for batch in stream.take_events(settings.batch.max_size, within=within):
            records = [_in_record(ev.message) for ev in batch]
            result = await loop.run_in_executor(executor, processor.process, records)
            pending = [await out_topics[o.topic].send(key=o.key, value=o.value, headers=list(o.headers))
                       for o in result.out_records(k.topics.events)]
            # Wait for delivery before take_events acks the batch's offsets.
            await asyncio.gather(*pending)

    return app


def run_worker(settings: Settings, make_processor: Callable[[], "BatchProcessor"]) -> None:
    """Blocks until SIGTERM/SIGINT; faust finishes in-flight work and commits before exiting."""
    # The model loads before the worker joins the consumer group, so no partition waits on it.
    processor = make_processor()
    log.info("model ready: %s", processor.classifier.model_version)
    app = create_app(settings, processor)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
