"""A consumed Kafka record, independent of the client library that read it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InRecord:
    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes
    value: bytes
