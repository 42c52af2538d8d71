"""RawProducer's count of records not delivered, without a broker (the kafka-python producer is a
stand-in), and `generate` against topics that refuse writes on the real stack. The `produce`
counterparts are in tests/reliability/test_reliability_kafka_faults.py."""
from collections import Counter

import pytest

from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError, UnknownError

from stream.producer import RawProducer


class Future:
    def __init__(self, error=None):
        self.error = error

    def get(self, timeout=None):
        if self.error is not None:
            raise self.error
        return "metadata"


class Client:
    """Answers each send with the next outcome: an exception raised by send(), or a Future."""

    def __init__(self, outcomes, flush_error=None):
        self.outcomes = list(outcomes)
        self.flush_error = flush_error
        self.sends = 0

    def send(self, topic, key=None, value=None, headers=None):
        self.sends += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def flush(self, timeout=None):
        if self.flush_error is not None:
            raise self.flush_error

    def close(self, timeout=None):
        pass


def producer(client) -> RawProducer:
    p = RawProducer.__new__(RawProducer)  # no broker: only the counting is under test
    p.topics = {"news": "raw.news", "social": "raw.social"}
    p._p, p.sent, p.failed, p.errors, p.unavailable, p._futures = client, 0, 0, Counter(), None, []
    return p


def test_refused_records_are_counted_even_when_the_client_flush_itself_raises():
    # kafka-python's flush() raises "Future not done" while it splits a refused batch to send it again
    client = Client([Future(), Future(MessageSizeTooLargeError()), Future()], flush_error=UnknownError("Future not done"))
    p = producer(client)
    for i in range(3):
        p.send_bytes("news", b"k%d" % i, b"v")
    p.flush()
    assert (p.sent, p.failed, dict(p.errors)) == (3, 1, {"MessageSizeTooLargeError": 1})


def test_a_record_refused_before_sending_is_counted_and_the_others_are_still_sent():
    client = Client([MessageSizeTooLargeError(), Future(), Future()])
    p = producer(client)
    for i in range(3):
        p.send_bytes("news", b"k%d" % i, b"v")
    p.flush()
    assert client.sends == 3 and (p.sent, p.failed) == (3, 1)


def test_after_a_send_timed_out_waiting_for_metadata_the_rest_are_counted_without_waiting_again():
    client = Client([Future(), KafkaTimeoutError("no metadata"), Future(), Future()])
    p = producer(client)
    for i in range(4):
        p.send_bytes("news", b"k%d" % i, b"v")
    p.flush()
    assert client.sends == 2  # each further send would have blocked MAX_BLOCK_MS
    assert (p.sent, p.failed) == (4, 3)
    assert dict(p.errors) == {"KafkaTimeoutError": 1, "not sent after KafkaTimeoutError": 2}


@pytest.mark.integration
def test_generate_counts_what_the_broker_refused_and_exits_1(isolated):
    import subprocess
    import sys

    from marketpulse.kafka_topics import ensure_topics
    from tests.support import refuse_writes

    s = isolated.settings
    ensure_topics(s.kafka)
    for topic in s.kafka.topics.raw():
        refuse_writes(s.kafka.bootstrap, topic)
    done = subprocess.run([sys.executable, "-m", "marketpulse.cli", "generate", "--rate", "50", "--duration", "1",
                           "--no-realtime", "--config", str(isolated.config)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    assert "sent 0 records" in done.stdout and "NOT DELIVERED" in done.stdout, done.stdout
