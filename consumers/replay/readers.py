"""Historical labeled events in event-time order, from Elasticsearch or from Kafka.

Both readers decode at their edge and yield ``LabeledEvent``s with ``start <= published_at < end``
ordered by (published_at, source, id), so the two sources feed the monitors identically; a record
that does not decode is yielded as None (the replay counts it as skipped, as the alerter skips it). Neither writes
anything: the ES reader uses a point-in-time search, the Kafka reader assigns partitions with
``group_id=None`` and never commits, so live consumer groups and their offsets are untouched.
"""
from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from elasticsearch import Elasticsearch
from kafka import TopicPartition

from pydantic import ValidationError

from marketpulse import wire
from marketpulse.event_clock import EventClock
from marketpulse.schemas import LabeledEvent
from marketpulse.settings import Settings
from marketpulse.wire import InRecord
from marketpulse import kafka_client

log = logging.getLogger(__name__)
EVENT_FIELDS = frozenset(LabeledEvent.model_fields)


def parse_time(value: str | datetime) -> datetime:
    """ISO-8601 (``Z`` allowed); naive means UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def sort_key(event: LabeledEvent) -> tuple[float, str, str]:
    return event.published_at.timestamp(), event.source, event.id


def from_document(doc: dict[str, Any]) -> LabeledEvent | None:
    """An indexed document back as a LabeledEvent (index-only fields like ticker_symbols dropped);
    None if it is not one."""
    try:
        return LabeledEvent.model_validate({k: v for k, v in doc.items() if k in EVENT_FIELDS})
    except ValidationError as exc:
        log.warning("skipping invalid event %s (%s)", doc.get("id"), exc.errors()[0].get("msg"))
        return None


# -- Elasticsearch -----------------------------------------------------------------------------------

def _range_query(start: datetime, end: datetime) -> dict[str, Any]:
    return {"range": {"published_at": {"gte": start.isoformat(), "lt": end.isoformat()}}}


def count_es(es: Elasticsearch, index: str, start: datetime, end: datetime) -> int:
    return int(es.count(index=index, query=_range_query(start, end))["count"])


def read_es(es: Elasticsearch, index: str, start: datetime, end: datetime, page: int = 1000,
            keep_alive: str = "2m") -> Iterator[LabeledEvent | None]:
    """search_after over a point in time: a consistent snapshot even while the sink keeps writing."""
    pit = es.open_point_in_time(index=index, keep_alive=keep_alive)["id"]
    after: list[Any] | None = None
    try:
        while True:
            kw: dict[str, Any] = {"search_after": after} if after is not None else {}
            resp = es.search(pit={"id": pit, "keep_alive": keep_alive}, query=_range_query(start, end),
                             sort=[{"published_at": "asc"}, {"source": "asc"}, {"id": "asc"}],
                             size=page, track_total_hits=False, **kw)
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            if not hits:
                return
            for h in hits:
                yield from_document(h["_source"])
            after = hits[-1]["sort"]
    finally:
        es.options(ignore_status=404).close_point_in_time(id=pit)


# -- Kafka -------------------------------------------------------------------------------------------

def read_kafka(settings: Settings, start: datetime, end: datetime, clock: EventClock,
               topic: str | None = None, poll_timeout_ms: int = 1000) -> Iterator[LabeledEvent | None]:
    """The events topic from ``start`` (by record timestamp) to the end offsets taken at the start.

    Records are produced after the event was published, so seeking by record time to ``start``
    skips nothing in range. Partitions interleave arbitrarily, so records go through a small
    reorder heap and leave it once every unfinished partition has moved the clock's allowed lateness
    past them.
    """
    k = settings.kafka
    topic = topic or k.topics.events
    lateness = clock.allowed_lateness_s
    consumer = kafka_client.consumer(k, group_id=None, enable_auto_commit=False,
                                     client_id=f"{k.client_id}-replay", auto_offset_reset="earliest",
                                     max_poll_records=2000, consumer_timeout_ms=poll_timeout_ms)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise RuntimeError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        seek_ms = int((start.timestamp() - lateness) * 1000)
        found = consumer.offsets_for_times({tp: max(seek_ms, 0) for tp in tps})
        active: dict[TopicPartition, float] = {}
        for tp in tps:
            pos = found[tp].offset if found.get(tp) else ends[tp]
            consumer.seek(tp, pos)
            if pos < ends[tp]:
                active[tp] = float("-inf")  # latest published_at seen in this partition
        t0, t1 = start.timestamp(), end.timestamp()
        # The sequence number breaks ties between redeliveries of one event (events do not compare).
        heap: list[tuple[tuple[float, str, str], int, LabeledEvent]] = []
        seq = 0
        while active:
            batch = consumer.poll(timeout_ms=poll_timeout_ms)
            for tp, recs in batch.items():
                for r in recs:
                    if r.offset >= ends[tp]:
                        break
                    try:
                        ev = wire.decode_labeled(InRecord.from_kafka(r))
                    except wire.WireError as exc:  # the sink dead-letters these; replay skips them like the alerter
                        log.warning("skipping unreadable event at %s:%d:%d (%s)", r.topic, r.partition, r.offset, exc)
                        yield None
                        continue
                    key = sort_key(ev)
                    if tp in active:
                        active[tp] = max(active[tp], key[0])
                    if t0 <= key[0] < t1:
                        seq += 1
                        heapq.heappush(heap, (key, seq, ev))
            for tp in list(active):
                if consumer.position(tp) >= ends[tp]:
                    del active[tp]
            while heap and clock.releases(heap[0][0][0], active.values()):
                yield heapq.heappop(heap)[2]
        while heap:
            yield heapq.heappop(heap)[2]
    finally:
        consumer.close(autocommit=False)
