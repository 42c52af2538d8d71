"""Sends a generated stream to the raw topics, optionally paced to the wall clock."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from marketpulse.settings import KafkaSettings
from stream.generate.generator import Generator
from stream.generate.scenarios import Scenario


class BytesSink(Protocol):
    def send_bytes(self, source: str, key: bytes | None, value: bytes) -> None: ...
    def flush(self) -> None: ...


def run_generator(
    kafka: KafkaSettings | None,
    *,
    rate: float,
    duration: float,
    seed: int,
    scenarios: Iterable[Scenario | str] = (),
    malformed_fraction: float = 0.0,
    realtime: bool = True,
    start: datetime | None = None,
    producer: BytesSink | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Generate and send; returns counts ``{"sent", "malformed", "news", "social", "failed"}`` and the
    ``errors`` of the records not delivered (``failed``, by error name).

    ``producer`` defaults to a ``RawProducer`` on ``kafka`` (closed at the end); pass any object with
    ``send_bytes``/``flush`` to test without a broker. With ``realtime`` each record is sent at its
    offset from the first send; otherwise as fast as possible.
    """
    gen = Generator(seed=seed, rate_per_s=rate, duration_s=duration, scenarios=scenarios, start=start,
                    malformed_fraction=malformed_fraction)
    own = producer is None
    if own:
        from stream.producer import RawProducer  # kafka import only when really sending

        if kafka is None:
            raise ValueError("need kafka settings or a producer")
        producer = RawProducer(kafka)
    assert producer is not None
    stats = {"sent": 0, "malformed": 0, "news": 0, "social": 0}
    t0 = clock()
    try:
        for rec in gen.raw_records():
            if realtime:
                delay = rec.offset_s - (clock() - t0)
                if delay > 0:
                    sleep(delay)
            producer.send_bytes(rec.source, rec.key, rec.value)
            stats["sent"] += 1
            stats[rec.source] += 1
            if rec.malformed:
                stats["malformed"] += 1
        producer.flush()
    finally:
        if own:
            producer.close()  # type: ignore[attr-defined]
    # A RawProducer knows after flush what the broker did not acknowledge.
    stats["failed"] = getattr(producer, "failed", 0)
    stats["errors"] = dict(getattr(producer, "errors", {}))
    return stats
