"""Sends raw records (JSON RawEvents or arbitrary bytes) to the raw topics."""
from __future__ import annotations

import logging
import time
from collections import Counter

from kafka.errors import KafkaError, KafkaTimeoutError

from marketpulse import kafka_client, wire
from marketpulse.schemas import RawEvent
from marketpulse.settings import KafkaSettings

log = logging.getLogger(__name__)

# Bounds on waiting for the broker once connected (the first connection is bounded by
# kafka.connect_timeout_s), so that a run that cannot deliver ends, and says so, in well under a
# minute: a topic's metadata per send, a record's delivery with its retries.
MAX_BLOCK_MS = 10_000
REQUEST_TIMEOUT_MS = 10_000
DELIVERY_TIMEOUT_MS = 30_000


class RawProducer:
    def __init__(self, kafka: KafkaSettings):
        self.topics = {"news": kafka.topics.raw_news, "social": kafka.topics.raw_social}
        self._p = kafka_client.producer(kafka, client_id=f"{kafka.client_id}-producer", acks="all", linger_ms=10,
                                        retries=10, max_in_flight_requests_per_connection=1,
                                        max_block_ms=MAX_BLOCK_MS, request_timeout_ms=REQUEST_TIMEOUT_MS,
                                        delivery_timeout_ms=DELIVERY_TIMEOUT_MS)
        self.sent = 0
        self.failed = 0  # records the broker did not acknowledge (known after flush)
        self.errors: Counter[str] = Counter()  # why, by error name
        self.unavailable: str | None = None  # set once a send timed out waiting for metadata: the rest are not tried
        self._futures: list = []

    def send_event(self, event: RawEvent) -> None:
        rec = wire.encode_raw(event, self.topics[event.source])
        self._send(rec.topic, rec.key, rec.value, list(rec.headers))

    def send_bytes(self, source: str, key: bytes | None, value: bytes) -> None:
        """Anything, as an outside producer might send it (no schema header)."""
        self._send(self.topics[source], key, value, [])

    def _send(self, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        self.sent += 1
        if self.unavailable is None:
            try:
                self._futures.append(self._p.send(topic, key=key, value=value, headers=headers))
                return
            except KafkaTimeoutError as exc:  # no metadata within MAX_BLOCK_MS: each further send would wait as long
                self.unavailable = reason = type(exc).__name__
                log.error("cannot send to %s (%s: %s); the remaining records are not sent", topic, reason, exc)
            except KafkaError as exc:  # this record only, refused before it was sent
                reason = type(exc).__name__
        else:
            reason = f"not sent after {self.unavailable}"
        self.failed += 1
        self.errors[reason] += 1

    def flush(self) -> None:
        """Waits for every record, DELIVERY_TIMEOUT_MS at most; ``failed`` counts the ones the broker did
        not acknowledge, or not in time."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT_MS / 1000
        try:
            self._p.flush(timeout=DELIVERY_TIMEOUT_MS / 1000)
        except KafkaError as exc:  # e.g. while a refused batch is split and sent again; the futures tell
            log.warning("flush: %s: %s", type(exc).__name__, exc)
        for f in self._futures:
            try:
                f.get(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # refused, or not acknowledged in time
                self.failed += 1
                self.errors[type(exc).__name__] += 1
        self._futures = []

    def close(self) -> None:
        self.flush()
        try:
            self._p.close(timeout=5)
        except KafkaError as exc:
            log.warning("close: %s: %s", type(exc).__name__, exc)

    def __enter__(self) -> "RawProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
