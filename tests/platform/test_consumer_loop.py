"""The consumer loop: poll -> handle -> flush -> commit in this order, Kafka errors retried, and the
stop signal honoured inside a retry without committing."""
import threading

import pytest
from kafka.errors import KafkaConnectionError

from marketpulse.consumer_loop import ConsumerLoop, MemorySink, MemorySource, Stopped, call_retrying
from marketpulse.wire import InRecord, OutRecord


def records(n, partition=0):
    return [InRecord(f"v{i}".encode(), f"k{i}".encode(), "t", partition, i) for i in range(n)]


class Recorder:
    """A handler that logs the order of calls and forwards records to a sink on flush."""

    def __init__(self, sink, log, fail_flush=0):
        self.sink, self.log, self.fail_flush = sink, log, fail_flush
        self.pending = []

    def handle(self, recs):
        self.log.append(("handle", len(recs)))
        self.pending += [OutRecord("out", r.key, r.value) for r in recs]

    def flush(self):
        if self.fail_flush:
            self.fail_flush -= 1
            self.log.append(("flush failed",))
            raise KafkaConnectionError("broker away")
        for r in self.pending:
            self.sink.send(r)
        self.sink.flush()
        self.pending = []
        self.log.append(("flush",))

    def commit(self, source):
        source.commit()
        self.log.append(("commit", source.committed))

    def reset(self):
        self.pending = []
        self.log.append(("reset",))


def test_every_step_flushes_outputs_before_it_commits_the_offsets():
    log, sink, source = [], MemorySink(), MemorySource(records(5), batch=2)
    loop = ConsumerLoop(source, Recorder(sink, log), name="t")
    while not source.exhausted:
        loop.step()
    assert log == [("handle", 2), ("flush",), ("commit", 2), ("handle", 2), ("flush",), ("commit", 4),
                   ("handle", 1), ("flush",), ("commit", 5)]
    assert [r.value for r in sink.delivered] == [f"v{i}".encode() for i in range(5)]


def test_a_failed_step_rewinds_to_the_last_commit_and_the_retry_reads_the_same_records_again():
    log, sink, source = [], MemorySink(), MemorySource(records(4), batch=2)
    loop = ConsumerLoop(source, Recorder(sink, log), name="t")
    loop.step()
    loop.handler.fail_flush = 2
    stop = threading.Event()
    call_retrying(stop, "step", loop.step, initial_s=0.01, max_backoff_s=0.02)
    assert log[3:] == [("handle", 2), ("flush failed",), ("reset",), ("handle", 2), ("flush failed",), ("reset",),
                       ("handle", 2), ("flush",), ("commit", 4)]
    # Each record delivered once: the failed attempts delivered nothing, and nothing was skipped.
    assert [r.value for r in sink.delivered] == [b"v0", b"v1", b"v2", b"v3"]


def test_the_stop_signal_ends_a_retry_with_stopped_and_without_a_commit():
    source = MemorySource(records(3), batch=3)
    log, stop = [], threading.Event()
    handler = Recorder(MemorySink(), log, fail_flush=10**6)
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(Stopped):
        call_retrying(stop, "step", ConsumerLoop(source, handler, name="t").step, initial_s=0.05, max_backoff_s=0.1)
    assert source.committed == 0 and not any(e[0] == "commit" for e in log)


def test_run_returns_when_stopped_even_while_the_broker_is_away():
    stop = threading.Event()
    handler = Recorder(MemorySink(), [], fail_flush=10**6)
    loop = ConsumerLoop(MemorySource(records(1)), handler, name="t", max_backoff_s=0.05)
    t = threading.Thread(target=loop.run, args=(stop,))
    t.start()
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
