"""Overload: input at about twice the worker's measured capacity for two minutes. The backlog waits in
Kafka, not in the worker: its resident memory stays under a fixed bound and stops growing, and once
the input stops the lag drains until every record is searchable.

Capacity is measured in the same test (a backlog drained at full speed), so the factor holds on any
machine; the memory bounds are absolute margins over the worker's own warmed-up footprint.
"""
import time

import pytest

from marketpulse.kafka_topics import ensure_topics
from tests.support import (PacedProducer, RssSampler, es_doc_count, generated_records, proc_status_kib, read_topic,
                           topic_end_total, wait_until)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CAPACITY_RECORDS = 2000
OVERLOAD_FACTOR = 2.0
OVERLOAD_S = 120
# Peak RSS during overload + drain, above the warmed-up worker. By design the worker's memory grows
# with records *processed* until the novelty window is full (50,000 MinHash entries, about 10 KiB
# each: ~500 MiB), never with records *waiting*; the rest is headroom for fetch buffers.
PEAK_OVER_BASELINE_MIB = 768
# Last 30 s of overload vs 60-90 s: at most the novelty entries of 30-60 s of processing (a worker that
# buffered the backlog would grow with the input rate instead, i.e. twice as fast and without end).
LATE_GROWTH_MIB = 128


def measure_capacity(bootstrap: str, events_topic: str, skip: int) -> float:
    """Records/s the worker emitted while draining a backlog: Kafka timestamps of its output, from the
    10th to the 90th percentile (start-up and the last partial batches left out)."""
    ts = sorted(m.timestamp for m in read_topic(bootstrap, events_topic))[skip:]
    lo, hi = int(len(ts) * 0.1), int(len(ts) * 0.9)
    return (hi - lo) / max(1e-3, (ts[hi] - ts[lo]) / 1000)


@pytest.mark.timeout(600)
def test_twice_capacity_for_two_minutes_keeps_worker_memory_bounded_and_the_lag_drains(isolated, es):
    s = isolated.settings
    ensure_topics(s.kafka)
    alias = s.elasticsearch.index_prefix
    worker = isolated.start("worker")
    isolated.start("sink")

    # warm up (model loaded, partitions assigned), then measure capacity on a backlog
    warm, warm_valid, _ = generated_records(s, seed=71, n=100, id_prefix="warm-")
    PacedProducer(s.kafka.bootstrap, warm, rate=1e6).run()
    try:
        wait_until(lambda: es_doc_count(es, alias) >= len(warm_valid), 240, what="warm-up records in ES")
    except AssertionError:
        pytest.fail(isolated.log_tail(worker, 60))
    cap, cap_valid, _ = generated_records(s, seed=72, n=CAPACITY_RECORDS, id_prefix="cap-")
    PacedProducer(s.kafka.bootstrap, cap, rate=1e6).run()
    expected = len(warm_valid) + len(cap_valid)
    wait_until(lambda: topic_end_total(s.kafka.bootstrap, s.kafka.topics.events) >= len(warm) + len(cap), 300, 1.0,
               what="the capacity backlog labeled")
    capacity = measure_capacity(s.kafka.bootstrap, s.kafka.topics.events, skip=len(warm))
    wait_until(lambda: es_doc_count(es, alias) >= expected, 120, what="capacity records in ES")

    # overload
    rate = OVERLOAD_FACTOR * capacity
    load, load_valid, _ = generated_records(s, seed=73, n=int(rate * OVERLOAD_S), id_prefix="load-")
    expected += len(load_valid)
    baseline_kib = proc_status_kib(worker.pid)
    sampler = RssSampler(worker.pid, interval=1.0)
    producer = PacedProducer(s.kafka.bootstrap, load, rate)
    t0 = time.monotonic()
    sampler.start(); producer.start()
    producer.join(OVERLOAD_S * 2)
    t_end = time.monotonic()
    assert producer.error is None and producer.acked == len(load)
    achieved = producer.achieved_rate
    labeled_at_end = topic_end_total(s.kafka.bootstrap, s.kafka.topics.events) - len(warm) - len(cap)
    backlog = len(load) - labeled_at_end

    # drain: every record ends up searchable
    drain_timeout = 120 + 2 * backlog / capacity
    try:
        wait_until(lambda: es_doc_count(es, alias) >= expected, drain_timeout, 2.0, what="the lag to drain into ES")
    except AssertionError:
        pytest.fail(f"{es_doc_count(es, alias)}/{expected} in ES\n" + isolated.log_tail(worker, 40))
    drained_s = time.monotonic() - t_end
    samples = sampler.stop()
    assert worker.poll() is None, isolated.log_tail(worker)
    assert es_doc_count(es, alias) == expected

    # it really was an overload: input well above capacity, and a backlog built up in Kafka
    assert achieved >= 1.5 * capacity, (achieved, capacity)
    assert backlog >= 0.25 * len(load), (backlog, len(load))

    mib = lambda kib: kib / 1024  # noqa: E731
    peak = max(kib for _, kib in samples)
    early = max(sampler.between(t0 + 60, t0 + 90))
    late = max(sampler.between(t_end - 30, t_end))
    assert mib(peak - baseline_kib) <= PEAK_OVER_BASELINE_MIB, (mib(baseline_kib), mib(peak))
    assert mib(late - early) <= LATE_GROWTH_MIB, (mib(early), mib(late))
    print(f"\nRESULT overload: capacity {capacity:.0f} rec/s; input {achieved:.0f} rec/s for {t_end - t0:.0f} s "
          f"({len(load)} records); backlog {backlog} at the end of input, drained into ES in {drained_s:.0f} s; "
          f"worker RSS baseline {mib(baseline_kib):.0f} MiB, peak {mib(peak):.0f} MiB "
          f"(bound +{PEAK_OVER_BASELINE_MIB}), 60-90 s max {mib(early):.0f} MiB vs last 30 s max {mib(late):.0f} MiB "
          f"(bound +{LATE_GROWTH_MIB}); VmHWM {mib(proc_status_kib(worker.pid, 'VmHWM')):.0f} MiB")
