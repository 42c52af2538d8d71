"""One consumer loop for every Kafka consumer of marketpulse: poll -> handle -> flush -> commit.

The order is written here once. A handler may buffer what it makes of the records (documents,
alerts, dead letters); ``flush`` makes all of it durable, and only then does the source commit the
offsets, so a crash anywhere re-delivers instead of losing (handlers write idempotently, so a
re-delivery overwrites). Kafka outages are retried with capped, jittered backoff; the stop signal
is honoured between steps and inside every retry (``Stopped``), leaving the uncommitted records for
the next run. Sources and sinks are small classes: Kafka ones for the processes, in-memory ones
(``MemorySource``, ``MemorySink``) so handlers are tested without a broker.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from kafka.errors import KafkaError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential_jitter

from marketpulse.wire import InRecord, OutRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class Stopped(Exception):
    """The stop signal arrived while waiting to retry; nothing after the last commit is lost."""


class Source(Protocol):
    def poll(self, timeout_ms: int) -> list[InRecord]: ...

    def commit(self) -> None: ...

    def rewind(self) -> None:
        """Back to the last committed position: after a failed step, the records it polled come
        again instead of being skipped by the next commit."""

    def close(self) -> None: ...


class Sink(Protocol):
    def send(self, record: OutRecord) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Handler(Protocol):
    def handle(self, records: list[InRecord]) -> None:
        """Work on one poll's records (possibly none: time moves on in quiet streams too)."""

    def flush(self) -> None:
        """Make the outputs of everything handled so far durable."""

    def commit(self, source: Source) -> None:
        """Called after ``flush``: commit the source (or checkpoint state with the offsets)."""

    def reset(self) -> None:
        """Forget what was handled since the last commit (the source rewinds to it)."""


def retrying(stop: threading.Event, what: str, *, on: tuple[type[BaseException], ...] = (KafkaError,),
             max_backoff_s: float = 10.0, initial_s: float = 0.5) -> Retrying:
    """Retries ``on`` errors with exponential, jittered backoff (so many consumers do not retry in
    step) until it succeeds; the wait ends early when ``stop`` is set, which raises ``Stopped``
    without another attempt."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc,
                    state.next_action.sleep if state.next_action else 0.0)

    def stopped(state: RetryCallState) -> Any:
        raise Stopped(what)

    def sleep(seconds: float) -> None:
        # A stop during the wait ends the retries there: another attempt (say, against an
        # unreachable server) could hold the shutdown for a whole request timeout.
        if stop.wait(seconds):
            raise Stopped(what)

    return Retrying(retry=retry_if_exception_type(on), wait=wait_exponential_jitter(multiplier=initial_s, max=max_backoff_s, jitter=initial_s),
                    stop=stop_when_event_set(stop), sleep=sleep, before_sleep=before_sleep,
                    retry_error_callback=stopped)


def call_retrying(stop: threading.Event, what: str, fn: Callable[[], T], **kw: Any) -> T:
    return retrying(stop, what, **kw)(fn)


class ConsumerLoop:
    def __init__(self, source: Source, handler: Handler, *, name: str, poll_timeout_ms: int = 500,
                 max_backoff_s: float = 10.0):
        self.source, self.handler, self.name = source, handler, name
        self.poll_timeout_ms = poll_timeout_ms
        self.max_backoff_s = max_backoff_s
        self._needs_rewind = False

    def step(self) -> int:
        """One poll -> handle -> flush -> commit. Returns the number of records polled. If any part
        fails, the source rewinds to its last commit and the handler forgets the step, so the
        retry reads the same records again: a failed step never lets a later commit skip them."""
        try:
            records = self.source.poll(self.poll_timeout_ms)
            self.handler.handle(records)
            self.handler.flush()
            self.handler.commit(self.source)
        except BaseException:
            self._rewind()
            raise
        return len(records)

    def _rewind(self) -> None:
        try:
            self.source.rewind()
        except Exception as exc:  # broker away: the retry rewinds again before it polls
            log.warning("%s could not rewind (%s); the retry will", self.name, exc)
            self._needs_rewind = True
        else:
            self._needs_rewind = False
        self.handler.reset()

    def run(self, stop: threading.Event) -> None:
        """Steps until ``stop`` is set; Kafka errors are retried with backoff. The source is left
        open: the owner closes it (after its own last checkpoint)."""
        log.info("%s running", self.name)

        def attempt() -> int:
            if self._needs_rewind:
                self._rewind()
                if self._needs_rewind:
                    raise KafkaError("rewind to the committed offsets failed")
            return self.step()

        try:
            while not stop.is_set():
                call_retrying(stop, f"{self.name} step", attempt, max_backoff_s=self.max_backoff_s)
        except Stopped:
            log.info("%s stopped while retrying; uncommitted records come again on restart", self.name)


# -- Kafka ----------------------------------------------------------------------------------------
class KafkaSource:
    """A kafka-python consumer as a Source: records become ``InRecord``s at this edge."""

    def __init__(self, consumer: Any):
        self.consumer = consumer

    def poll(self, timeout_ms: int) -> list[InRecord]:
        polled = self.consumer.poll(timeout_ms=timeout_ms)
        return [InRecord.from_kafka(r) for batch in polled.values() for r in batch]

    def commit(self) -> None:
        self.consumer.commit()

    def rewind(self) -> None:
        for tp in self.consumer.assignment():
            committed = self.consumer.committed(tp)
            if committed is None:
                self.consumer.seek_to_beginning(tp)  # the group's reset policy for a fresh group
            else:
                self.consumer.seek(tp, committed)

    def close(self) -> None:
        self.consumer.close()

    def positions(self) -> dict[int, int]:
        """Next offset to read per assigned partition (one topic)."""
        return {tp.partition: self.consumer.position(tp) for tp in self.consumer.assignment()}

    def lagging(self) -> list[int]:
        """Assigned partitions with records left to read."""
        parts = list(self.consumer.assignment())
        ends = self.consumer.end_offsets(parts)
        return [tp.partition for tp in parts if self.consumer.position(tp) < ends[tp]]


class KafkaSink:
    """A kafka-python producer as a Sink (acks=all producers). ``flush`` waits for the broker and
    raises if any record sent since the last flush was not delivered, so nothing is committed
    without its output."""

    def __init__(self, producer: Any):
        self.producer = producer
        self._futures: list[Any] = []
        self._lock = threading.Lock()  # the alerter's webhook threads send delivery records too

    def send(self, record: OutRecord) -> None:
        future = self.producer.send(record.topic, key=record.key, value=record.value, headers=list(record.headers))
        with self._lock:
            self._futures.append(future)

    def flush(self) -> None:
        self.producer.flush()
        with self._lock:
            futures, self._futures = self._futures, []
        failed = [f.exception for f in futures if f.failed()]
        if failed:
            raise failed[0] if isinstance(failed[0], KafkaError) else KafkaError(str(failed[0]))

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


# -- in memory (tests, replays from files) --------------------------------------------------------
class MemorySource:
    """Records from a list, ``batch`` per poll; ``committed`` is the number of records committed."""

    def __init__(self, records: Iterable[InRecord], batch: int = 100):
        self.records = list(records)
        self.batch = batch
        self.position = 0
        self.committed = 0
        self.closed = False

    def poll(self, timeout_ms: int = 0) -> list[InRecord]:
        out = self.records[self.position:self.position + self.batch]
        self.position += len(out)
        return out

    def commit(self) -> None:
        self.committed = self.position

    def rewind(self) -> None:
        self.position = self.committed

    def close(self) -> None:
        self.closed = True

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.records)

    def positions(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for r in self.records[:self.position]:
            out[r.partition] = r.offset + 1
        return out

    def lagging(self) -> list[int]:
        return sorted({r.partition for r in self.records[self.position:]})


class MemorySink:
    """Collects sent records; only flushed records count as delivered (``delivered``)."""

    def __init__(self) -> None:
        self.pending: list[OutRecord] = []
        self.delivered: list[OutRecord] = []

    def send(self, record: OutRecord) -> None:
        self.pending.append(record)

    def flush(self) -> None:
        self.delivered += self.pending
        self.pending = []

    def close(self) -> None:
        self.flush()

    def topic(self, name: str) -> list[OutRecord]:
        return [r for r in self.delivered if r.topic == name]
