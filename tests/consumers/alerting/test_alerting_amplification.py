"""Amplification: near-duplicate copies (retweets, syndication) raise a key's volume, less and less
per copy of one story, and at most once per author (or feed without an author) per bucket and key."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from marketpulse.schemas import Alert
from consumers.alerting.buckets import BucketAggregator, copy_factor
from consumers.alerting.config import DetectorConfig
from consumers.alerting.monitor import SpikeMonitor

from datetime import datetime, timezone

T0 = datetime(2024, 1, 9, 15, 0, tzinfo=timezone.utc)  # same instant as the make_event fixture

B = 60
START = int(T0.timestamp())
STORM_MINUTE = 100
ROOTS = [f"root-{r}" for r in range(4)]


def copy(make_event, id, at, root, author, feed="x", p_neg=0.95, tickers=(("TSLA", 1.0),), topic="Legal"):
    """A social copy of `root` posted by `author` (None: the feed itself) on network `feed`."""
    ev = make_event(id, at, p_neg=p_neg, topic=topic, tickers=list(tickers), duplicate_of=root,
                    source="social", text=f"RT: TSLA recall {root}")
    return ev.model_copy(update={"author": author, "source_name": feed})


def original(make_event, id, at, author="alice", feed="x", p_neg=0.95, tickers=(("TSLA", 1.0),), topic="Legal"):
    ev = make_event(id, at, p_neg=p_neg, topic=topic, tickers=list(tickers), source="social",
                    text=f"TSLA recall {id}")
    return ev.model_copy(update={"author": author, "source_name": feed})


def one_bucket(events, key="market"):
    agg = BucketAggregator(B)
    for e in events:
        agg.add(e)
    [bucket] = list(agg.close_until(START + B))
    return bucket.stats[key]


# -- weight ---------------------------------------------------------------------------------------

def test_a_copy_adds_less_than_an_original_but_more_than_nothing(make_event):
    alone = one_bucket([original(make_event, "a", 1)])
    copied = one_bucket([original(make_event, "a", 1), copy(make_event, "rt", 2, "a", author="bob")])
    twice = one_bucket([original(make_event, "a", 1), original(make_event, "b", 2, author="bob")])
    assert alone.total < copied.total < twice.total
    assert alone.negative < copied.negative < twice.negative
    assert copied.events == 1  # copies are not events: top_events and the drill-down stay originals


def test_copies_of_one_story_grow_with_the_square_root_of_their_number(make_event):
    def weight(n):
        return one_bucket([copy(make_event, f"rt{i}", 1 + i * 0.1, "a", author=f"u{i}") for i in range(n)]).total

    # N copies weigh about 2(sqrt(N + 1) - 1) originals: 100 -> ~18, 400 -> ~38.
    assert weight(100) == pytest.approx(2 * (math.sqrt(101) - 1), rel=0.05)
    assert weight(400) == pytest.approx(2 * (math.sqrt(401) - 1), rel=0.05)
    assert weight(100) == pytest.approx(sum(copy_factor(k) for k in range(1, 101)))


def test_copies_of_different_stories_each_start_again_at_full_copy_weight(make_event):
    one_story = one_bucket([copy(make_event, f"rt{i}", 1, "a", author=f"u{i}") for i in range(20)])
    four_stories = one_bucket([copy(make_event, f"rt{i}", 1, ROOTS[i % 4], author=f"u{i}") for i in range(20)])
    assert four_stories.total > one_story.total


# -- the cap --------------------------------------------------------------------------------------

@pytest.mark.parametrize("author, feed", [("bot", "x"), (None, "wire")], ids=["one-account", "one-feed"])
def test_one_account_or_one_feed_counts_at_most_once_per_bucket_and_key(make_event, author, feed):
    spam = one_bucket([copy(make_event, f"rt{i}", 1 + i * 0.1, ROOTS[i % 4], author=author, feed=feed)
                       for i in range(180)])
    single = one_bucket([copy(make_event, "rt0", 1, ROOTS[0], author=author, feed=feed)])
    assert spam.total == single.total and spam.negative == single.negative
    amp = spam.amplification()
    assert (amp.copies, amp.authors, amp.ignored) == (180, 1, 179)


def test_the_first_copy_by_event_time_is_the_one_that_counts(make_event):
    weak_first = [copy(make_event, "late-strong", 30, "a", author="bob", p_neg=0.9),
                  copy(make_event, "early-weak", 10, "a", author="bob", p_neg=0.1)]  # arrives second
    stats = one_bucket(weak_first)
    assert stats.negative == pytest.approx(copy_factor(1) * 0.1)


def test_the_same_account_counts_again_in_another_key_and_another_bucket(make_event):
    agg = BucketAggregator(B)
    agg.add(copy(make_event, "rt1", 1, "a", author="bot", tickers=[("TSLA", 1.0)]))
    agg.add(copy(make_event, "rt2", 2, "b", author="bot", tickers=[("AAPL", 1.0)]))
    agg.add(copy(make_event, "rt3", 61, "a", author="bot", tickers=[("TSLA", 1.0)]))
    first, second = agg.close_until(START + 2 * B)
    assert first.stats["ticker:TSLA"].amplification().authors == 1
    assert first.stats["ticker:AAPL"].amplification().authors == 1
    assert first.stats["market"].amplification().authors == 1  # same bucket and key: once
    assert first.stats["market"].amplification().ignored == 1
    assert second.stats["ticker:TSLA"].amplification().authors == 1


def test_amplification_does_not_depend_on_arrival_order(make_event):
    rng = random.Random(3)
    events = [copy(make_event, f"rt{i}", rng.uniform(0, 59), ROOTS[i % 4], author=f"u{i % 37}",
                   p_neg=rng.random(), tickers=[("TSLA", rng.choice([0.4, 1.0]))]) for i in range(120)]
    shuffled = list(events)
    rng.shuffle(shuffled)
    a, b = one_bucket(events, "ticker:TSLA"), one_bucket(shuffled, "ticker:TSLA")
    assert a.negative == b.negative and a.total == b.total  # exactly, not approximately
    assert a.amplification() == b.amplification()
    assert a.to_dict() == b.to_dict()


# -- state ----------------------------------------------------------------------------------------

def storm_copies(make_event, n, at=1.0, author=lambda i: f"u{i}"):
    return [copy(make_event, f"rt{i}", at + i * 0.2, ROOTS[i % 4], author=author(i)) for i in range(n)]


def test_bucket_state_with_amplification_round_trips_through_json(make_event):
    events = storm_copies(make_event, 60)
    agg = BucketAggregator(B, allowed_lateness_s=30)
    for e in events[:30]:
        agg.add(e)
    restored = BucketAggregator(B, allowed_lateness_s=30)
    restored.load(json.loads(json.dumps(agg.to_dict(), allow_nan=False)))
    assert not restored.add(events[0])  # still knows it counted that copy
    # A copy from a voice already heard, but earlier in event time: it replaces that voice's copy.
    earlier = copy(make_event, "rt-earlier", 0.5, ROOTS[3], author="u5", p_neg=0.2)
    for target in (agg, restored):
        for e in events[30:] + [earlier]:
            target.add(e)
    [x] = agg.close_until(START + 90)
    [y] = restored.close_until(START + 90)
    for key in ("market", "ticker:TSLA", "topic:Legal"):
        assert x.stats[key].to_dict() == y.stats[key].to_dict()
        assert x.stats[key].negative == y.stats[key].negative
        assert x.stats[key].amplification() == y.stats[key].amplification()
    assert restored.copies == agg.copies == 61


def test_a_bucket_snapshot_from_before_amplification_loads_and_counts_copies(make_event):
    old = {"open": {str(START): {"market": {"total": 2.0, "negative": 1.5, "events": 2, "top": []}}},
           "seen": {str(START): ["news:a", "news:b"]}, "closed_until": None, "max_event_time": START + 5.0,
           "late_dropped": 0, "duplicates_ignored": 3}
    agg = BucketAggregator(B)
    agg.load(old)
    assert agg.copies == 0
    agg.add(copy(make_event, "rt", 10, "a", author="bob", tickers=[]))
    [bucket] = agg.close_until(START + B)
    market = bucket.stats["market"]
    assert market.events == 2 and market.total == pytest.approx(2.0 + copy_factor(1))
    assert market.amplification().authors == 1


# -- the monitor: storms, alerts, resume ----------------------------------------------------------

def quiet_tsla(make_event, minutes: int = 130, seed: int = 0):
    """~6 TSLA posts a minute, 30 % of them negative, with a few ordinary retweets."""
    rng = np.random.default_rng(seed)
    events = []
    for m in range(minutes):
        for j in range(int(rng.poisson(6))):
            at = m * 60 + rng.uniform(0, 55)
            p = 0.9 if rng.random() < 0.3 else 0.05
            events.append(original(make_event, f"m{m}-{j}", at, author=f"a{m}-{j}", p_neg=p, topic="Markets"))
            if rng.random() < 0.1:
                events.append(copy(make_event, f"m{m}-{j}-rt", at + 2, f"m{m}-{j}", author=f"r{m}-{j}",
                                   p_neg=p, topic="Markets"))
    return events


def storm(make_event, author=lambda i: f"user{i}", feed="x", copies=180):
    """Four negative TSLA posts, then `copies` retweets of them within the same minute."""
    t = STORM_MINUTE * 60
    roots = [original(make_event, r, t + i, author=f"o{i}", feed=feed) for i, r in enumerate(ROOTS)]
    return roots + [copy(make_event, f"rt{i}", t + 5 + i * 0.25, ROOTS[i % 4], author=author(i), feed=feed)
                    for i in range(copies)]


def replay(monitor: SpikeMonitor, events, close: bool = True) -> list[Alert]:
    out = []
    for e in sorted(events, key=lambda e: (e.published_at, e.id)):
        monitor.observe(e)
        out += monitor.advance()
    return out + (monitor.advance(START + 10**6) if close else [])


def tsla(alerts):
    return [a for a in alerts if a.key == "ticker:TSLA"]


def test_a_retweet_storm_across_many_authors_alerts(make_event):
    assert not tsla(replay(SpikeMonitor(DetectorConfig()), quiet_tsla(make_event)))
    alerts = tsla(replay(SpikeMonitor(DetectorConfig()), quiet_tsla(make_event) + storm(make_event)))
    assert [a.status for a in alerts] == ["opened"]
    assert alerts[0].window_start.timestamp() == START + STORM_MINUTE * 60
    assert alerts[0].score >= DetectorConfig().threshold


@pytest.mark.parametrize("author, feed", [(lambda i: "bot", "x"), (lambda i: None, "wire")],
                         ids=["one-account", "one-feed"])
def test_the_same_storm_from_one_account_or_one_feed_does_not_alert(make_event, author, feed):
    alerts = replay(SpikeMonitor(DetectorConfig()), quiet_tsla(make_event) + storm(make_event, author, feed))
    assert not tsla(alerts)


def test_amplification_appears_in_the_alert(make_event):
    [a] = tsla(replay(SpikeMonitor(DetectorConfig()), quiet_tsla(make_event) + storm(make_event)))
    amp = a.amplification
    assert (amp.copies, amp.authors, amp.ignored) == (180, 180, 0)
    assert 0 < amp.weight < a.observed and amp.weight <= amp.total_weight < a.total_volume
    assert a.observed - amp.weight < amp.weight  # the storm, not the four posts, carries the alert
    assert [(r.id, r.copies, r.authors) for r in amp.top_roots] == [(r, 45, 45) for r in ROOTS]
    assert amp.top_roots[0].text.startswith("RT: TSLA recall")
    assert {t.id for t in a.top_events} >= set(ROOTS)  # top events stay originals
    json.dumps(a.model_dump(mode="json"))


def test_an_alert_without_copies_has_no_amplification(make_event):
    events = [e for e in quiet_tsla(make_event) if not e.duplicate_of]
    burst = [original(make_event, f"b{i}", STORM_MINUTE * 60 + i, author=f"b{i}") for i in range(40)]
    [a] = tsla(replay(SpikeMonitor(DetectorConfig()), events + burst))
    assert a.amplification is None


def test_monitor_resumes_mid_storm_with_the_same_alerts(make_event):
    events = sorted(quiet_tsla(make_event) + storm(make_event), key=lambda e: (e.published_at, e.id))
    cut = next(i for i, e in enumerate(events) if e.id == "rt90")
    whole = replay(SpikeMonitor(DetectorConfig()), events)
    before = SpikeMonitor(DetectorConfig())
    early = replay(before, events[:cut], close=False)
    state = json.loads(json.dumps(before.to_dict(), allow_nan=False))
    late = replay(SpikeMonitor.from_dict(state), events[cut:])
    assert tsla(whole) and [a.model_dump() for a in early + late] == [a.model_dump() for a in whole]


def test_a_monitor_snapshot_from_before_amplification_resumes(make_event):
    events = sorted(quiet_tsla(make_event) + storm(make_event), key=lambda e: (e.published_at, e.id))
    cut = next(i for i, e in enumerate(events) if e.published_at.timestamp() >= START + 90 * 60)
    before = SpikeMonitor(DetectorConfig())
    replay(before, [e for e in events[:cut] if not e.duplicate_of], close=False)  # it ignored copies
    state = json.loads(json.dumps(before.to_dict()))
    del state["buckets"]["copies"]
    for bucket in state["buckets"]["open"].values():
        for stats in bucket.values():
            del stats["amplification"]
    late = replay(SpikeMonitor.from_dict(state), events[cut:])
    assert [a.status for a in tsla(late)] == ["opened"] and tsla(late)[0].amplification.authors == 180
