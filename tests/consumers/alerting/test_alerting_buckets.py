"""Windowing: which bucket an event lands in, and what it adds there."""
from __future__ import annotations

import json

import pytest

from consumers.alerting.buckets import BucketAggregator, event_weights

from datetime import datetime, timezone

T0 = datetime(2024, 1, 9, 15, 0, tzinfo=timezone.utc)  # same instant as the make_event fixture

B = 60
START = int(T0.timestamp())  # T0 is on a minute boundary


def closed(agg: BucketAggregator, watermark: float) -> list:
    return list(agg.close_until(watermark))


def test_events_land_in_the_bucket_of_their_publication_time(make_event):
    agg = BucketAggregator(B, allowed_lateness_s=0)
    agg.add(make_event("a", 0))
    agg.add(make_event("b", 59.9))
    agg.add(make_event("c", 60))
    buckets = closed(agg, START + 120)
    assert [b.start for b in buckets] == [START, START + 60]
    assert buckets[0].stats["market"].events == 2
    assert buckets[1].stats["market"].events == 1


def test_a_bucket_closes_only_after_its_end_plus_allowed_lateness(make_event):
    agg = BucketAggregator(B, allowed_lateness_s=30)
    agg.add(make_event("a", 10))
    assert closed(agg, START + 89) == []
    agg.add(make_event("late-but-allowed", 50))  # out of order, within the lateness
    [bucket] = closed(agg, START + 90)
    assert bucket.stats["market"].events == 2


def test_events_for_an_already_closed_bucket_are_dropped_and_counted(make_event):
    agg = BucketAggregator(B, allowed_lateness_s=0)
    agg.add(make_event("a", 10))
    closed(agg, START + 60)
    assert agg.add(make_event("too-late", 20)) is False
    assert agg.late_dropped == 1


def test_empty_buckets_between_events_are_emitted_in_order(make_event):
    agg = BucketAggregator(B)
    agg.add(make_event("a", 0))
    agg.add(make_event("b", 180))
    buckets = closed(agg, START + 240)
    assert [b.start - START for b in buckets] == [0, 60, 120, 180]
    assert buckets[1].stats == {} and buckets[2].stats == {}


def test_redeliveries_add_nothing(make_event):
    agg = BucketAggregator(B)
    assert agg.add(make_event("a", 1))
    assert not agg.add(make_event("a", 1))  # redelivery of the same event
    assert agg.add(make_event("b", 2, duplicate_of="a", source="social"))  # a copy: amplification
    assert not agg.add(make_event("b", 2, duplicate_of="a", source="social"))  # and its redelivery
    [bucket] = closed(agg, START + 60)
    assert bucket.stats["market"].events == 1
    assert bucket.stats["market"].amplification().copies == 1
    assert agg.duplicates_ignored == 2 and agg.copies == 1


def test_ticker_volume_is_weighted_by_relevance_and_p_negative(make_event):
    w = event_weights(make_event("a", p_neg=0.8, topic="Macro", tickers=[("AAPL", 1.0), ("msft", 0.25)]))
    assert w["ticker:AAPL"] == pytest.approx((1.0, 0.8))
    assert w["ticker:MSFT"] == pytest.approx((0.25, 0.2))
    assert w["topic:Macro"] == pytest.approx((1.0, 0.8))  # topic and market: P(negative) only
    assert w["market"] == pytest.approx((1.0, 0.8))


def test_a_symbol_matched_twice_counts_once_at_its_best_relevance(make_event):
    w = event_weights(make_event("a", p_neg=1.0, tickers=[("AAPL", 0.3), ("AAPL", 0.9)]))
    assert w["ticker:AAPL"] == pytest.approx((0.9, 0.9))


def test_negative_share_is_negative_over_total_volume(make_event):
    agg = BucketAggregator(B)
    agg.add(make_event("a", 1, p_neg=0.9))
    agg.add(make_event("b", 2, p_neg=0.1))
    agg.add(make_event("c", 3, p_neg=0.5))
    [bucket] = closed(agg, START + 60)
    assert bucket.stats["market"].negative == pytest.approx(1.5)
    assert bucket.stats["market"].share == pytest.approx(0.5)


def test_top_contributors_are_capped_and_strongest_first(make_event):
    agg = BucketAggregator(B, max_contributors=2)
    for i, p in enumerate([0.6, 0.95, 0.2, 0.8]):
        agg.add(make_event(f"e{i}", i, p_neg=p, text=f"text {i}"))
    [bucket] = closed(agg, START + 60)
    top = bucket.stats["market"].contributors()
    assert [c.id for c in top] == ["e1", "e3"]
    assert top[0].text == "text 1" and top[0].source == "news"


def test_state_round_trips_through_json(make_event):
    agg = BucketAggregator(B, allowed_lateness_s=30)
    agg.add(make_event("a", 5, tickers=[("AAPL", 1.0)]))
    restored = BucketAggregator(B, allowed_lateness_s=30)
    restored.load(json.loads(json.dumps(agg.to_dict())))
    assert not restored.add(make_event("a", 5))  # still knows it counted "a"
    [x] = closed(agg, START + 90)
    [y] = closed(restored, START + 90)
    assert x.stats["ticker:AAPL"].to_dict() == y.stats["ticker:AAPL"].to_dict()
