"""Sends raw records (JSON RawEvents or arbitrary bytes) to the raw topics."""
from __future__ import annotations

from kafka import KafkaProducer

from marketpulse import wire
from marketpulse.schemas import RawEvent
from marketpulse.settings import KafkaSettings


class RawProducer:
    def __init__(self, kafka: KafkaSettings):
        self.topics = {"news": kafka.topics.raw_news, "social": kafka.topics.raw_social}
        self._p = KafkaProducer(bootstrap_servers=kafka.bootstrap, client_id=f"{kafka.client_id}-producer",
                                acks="all", linger_ms=10, retries=10, max_in_flight_requests_per_connection=1)
        self.sent = 0
        self.failed = 0  # records the broker did not acknowledge (known after flush)
        self._futures: list = []

    def send_event(self, event: RawEvent) -> None:
        rec = wire.encode_raw(event, self.topics[event.source])
        self._send(rec.topic, rec.key, rec.value, list(rec.headers))

    def send_bytes(self, source: str, key: bytes | None, value: bytes) -> None:
        """Anything, as an outside producer might send it (no schema header)."""
        self._send(self.topics[source], key, value, [])

    def _send(self, topic: str, key: bytes | None, value: bytes, headers: list) -> None:
        self._futures.append(self._p.send(topic, key=key, value=value, headers=headers))
        self.sent += 1

    def flush(self) -> None:
        """Waits for every record; ``failed`` counts the ones the broker did not acknowledge."""
        self._p.flush()
        self.failed += sum(1 for f in self._futures if f.failed())
        self._futures = []

    def close(self) -> None:
        self.flush()
        self._p.close()

    def __enter__(self) -> "RawProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
