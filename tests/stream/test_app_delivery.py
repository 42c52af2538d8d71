"""The worker's delivery of a micro-batch's output, without a broker: records the broker refused are
sent again until accepted (only those), and a batch interrupted on its way is never acknowledged.
The real-stack counterparts are in tests/reliability/test_reliability_kafka_faults.py."""
import asyncio
from types import SimpleNamespace

import pytest
from faust.types.tuples import ConsumerMessage

from marketpulse.wire import OutRecord
from stream.app import DeliveryAbandoned, deliver, never_acknowledge


class Broker:
    """Refuses each record named in `refusals` that many times, then accepts it."""

    def __init__(self, refusals: dict[bytes, int], raise_on_send: set[bytes] = frozenset()):
        self.refusals = dict(refusals)
        self.raise_on_send = set(raise_on_send)
        self.sent: list[bytes] = []
        self.accepted: list[bytes] = []

    async def send(self, rec: OutRecord):
        self.sent.append(rec.key)
        if rec.key in self.raise_on_send:
            self.raise_on_send.discard(rec.key)
            raise RuntimeError("no metadata for the topic")
        fut = asyncio.get_running_loop().create_future()
        if self.refusals.get(rec.key, 0) > 0:
            self.refusals[rec.key] -= 1
            fut.set_exception(RuntimeError("MessageSizeTooLargeError"))
        else:
            self.accepted.append(rec.key)
            fut.set_result(None)
        return fut


def records(*keys: str) -> list[OutRecord]:
    return [OutRecord("dead" if k.startswith("d") else "events", k.encode(), b"{}") for k in keys]


def test_only_the_refused_records_are_sent_again_after_a_doubling_wait_until_all_are_accepted():
    broker = Broker({b"d1": 3, b"d2": 1})
    waits: list[float] = []

    async def sleep(s):
        waits.append(s)

    rounds = asyncio.run(deliver(broker.send, records("e1", "d1", "e2", "d2"), wait_s=0.5, max_wait_s=1.5, sleep=sleep))
    assert rounds == 3 and waits == [0.5, 1.0, 1.5]
    assert broker.sent == [b"e1", b"d1", b"e2", b"d2", b"d1", b"d2", b"d1", b"d1"]
    assert sorted(broker.accepted) == [b"d1", b"d2", b"e1", b"e2"]  # each exactly once


def test_a_record_whose_send_raises_before_it_is_queued_is_sent_again():
    broker = Broker({}, raise_on_send={b"d1"})

    async def sleep(s):
        pass

    assert asyncio.run(deliver(broker.send, records("d1", "e1"), sleep=sleep)) == 1
    assert sorted(broker.accepted) == [b"d1", b"e1"]


def test_delivery_never_gives_up_on_its_own_but_stops_when_the_worker_stops():
    broker = Broker({b"d1": 10**9})

    async def main():
        task = asyncio.ensure_future(deliver(broker.send, records("d1"), wait_s=0.001, max_wait_s=0.001))
        await asyncio.sleep(0.2)
        assert not task.done()  # still re-sending: holding back, not skipping
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(broker.sent) > 5 and broker.accepted == []


def test_a_batch_marked_never_acknowledged_does_not_reach_the_consumer_when_faust_acks_it():
    # faust's take_events acks the batch in a finally, also when the agent stops or crashes mid-batch;
    # the consumer must not record those offsets (nothing would be committed past them).
    acked = []
    consumer = SimpleNamespace(ack=lambda m: acked.append(m.offset) or True)
    msgs = [ConsumerMessage("raw", 0, offset, 0.0, 0, [], b"k", b"v", None) for offset in (7, 8)]
    for m in msgs:
        m.incref()
    never_acknowledge([msgs[0]])
    assert [m.ack(consumer) for m in msgs] == [False, True]
    assert acked == [8]


def test_a_stopping_worker_abandons_the_refused_records_instead_of_waiting_for_them():
    broker = Broker({b"d1": 10**9})
    state = {"stopping": False, "waits": 0}

    async def sleep(s):
        state["waits"] += 1
        state["stopping"] = state["waits"] == 2  # SIGTERM during the second wait

    with pytest.raises(DeliveryAbandoned, match="1 output records not delivered"):
        asyncio.run(deliver(broker.send, records("e1", "d1"), stopping=lambda: state["stopping"], sleep=sleep))
    assert broker.sent == [b"e1", b"d1", b"d1"] and broker.accepted == [b"e1"]
