"""SpikeMonitor and the alert record: events in, one deterministic alert per incident out."""
from __future__ import annotations

import json

import numpy as np

from consumers.alerting.alert import alert_id
from marketpulse.schemas import Alert
from consumers.alerting.config import DetectorConfig
from consumers.alerting.monitor import SpikeMonitor

from datetime import datetime, timezone

T0 = datetime(2024, 1, 9, 15, 0, tzinfo=timezone.utc)  # same instant as the make_event fixture

START = T0.timestamp()
CFG = DetectorConfig(allowed_lateness_s=30)


def stream(make_event, minutes: int = 120, incident_at: int = 100, seed: int = 0):
    """~6 AAPL events a minute, 30 % negative; at `incident_at`, 25 strongly negative headlines."""
    rng = np.random.default_rng(seed)
    events = []
    for m in range(minutes):
        for j in range(int(rng.poisson(6))):
            p = 0.9 if rng.random() < 0.3 else 0.05
            events.append(make_event(f"m{m}-{j}", m * 60 + rng.uniform(0, 59), p_neg=p, topic="Markets",
                                     tickers=[("AAPL", 1.0)]))
        if m == incident_at:
            for j in range(25):
                events.append(make_event(f"inc-{j}", m * 60 + 1 + j, p_neg=0.97, topic="Legal",
                                         tickers=[("AAPL", 1.0)], text=f"AAPL sued over defect {j}"))
    return events


def replay(monitor: SpikeMonitor, events) -> list[Alert]:
    out = []
    for e in events:
        monitor.observe(e)
        out += monitor.advance()
    return out + monitor.advance(START + 10**6)


def test_an_incident_produces_one_alert_per_affected_key_with_its_headlines(make_event):
    alerts = replay(SpikeMonitor(CFG), stream(make_event))
    opened = {a.key: a for a in alerts if a.status == "opened"}
    # topic:Legal first appears with the incident itself: no history yet, so it is warming up.
    assert set(opened) == {"ticker:AAPL", "market"}
    a = opened["ticker:AAPL"]
    assert a.key_type == "ticker" and a.window_start.timestamp() == START + 100 * 60
    assert (a.window_end - a.window_start).total_seconds() == 60
    assert a.observed > a.expected and a.score >= CFG.threshold
    assert a.top_events and all(t.text.startswith("AAPL sued") for t in a.top_events)
    assert len(a.top_events) == CFG.max_contributors


def test_drilldown_query_filters_time_key_and_negative_sentiment(make_event):
    alerts = replay(SpikeMonitor(CFG), stream(make_event))
    a = next(a for a in alerts if a.key == "ticker:AAPL")
    filters = a.es_query["query"]["bool"]["filter"]
    assert {"term": {"ticker_symbols": "AAPL"}} in filters
    assert {"term": {"sentiment": "negative"}} in filters
    rng = next(f["range"]["published_at"] for f in filters if "range" in f)
    assert rng == {"gte": a.window_start.isoformat(), "lt": a.window_end.isoformat()}
    assert 'ticker_symbols:"AAPL"' in a.drilldown
    json.dumps(a.model_dump(mode="json"))  # ready to send as-is


def test_replay_and_shuffled_delivery_within_lateness_give_identical_alerts(make_event):
    events = stream(make_event)
    config = CFG.with_(allowed_lateness_s=120)
    first = replay(SpikeMonitor(config), events)
    # Swap neighbours: out of order by seconds, well within the allowed lateness.
    shuffled = list(events)
    for i in range(0, len(shuffled) - 1, 2):
        shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    monitor = SpikeMonitor(config)
    second = replay(monitor, shuffled + events[-8:])  # plus redeliveries of recent events
    assert monitor.buckets.late_dropped == 0 and monitor.buckets.duplicates_ignored == 8
    assert first and [a.model_dump() for a in first] == [a.model_dump() for a in second]


def test_events_later_than_the_allowed_lateness_do_not_count(make_event):
    monitor = SpikeMonitor(CFG)
    monitor.observe(make_event("a", 10))
    monitor.observe(make_event("b", 95))  # watermark 95 s: bucket [0, 60) + 30 s lateness closes
    monitor.advance()
    assert not monitor.observe(make_event("late", 20))
    assert monitor.buckets.late_dropped == 1


def test_alert_id_depends_only_on_key_and_window_start():
    assert alert_id("ticker:AAPL", START) == alert_id("ticker:AAPL", T0)
    assert alert_id("ticker:AAPL", START) != alert_id("ticker:MSFT", START)
    assert alert_id("ticker:AAPL", START) != alert_id("ticker:AAPL", START + 60)


def test_monitor_resumes_from_its_json_state_with_the_same_alerts(make_event):
    events = stream(make_event)
    cut = next(i for i, e in enumerate(events) if e.id == "inc-0")
    whole = replay(SpikeMonitor(CFG), events)
    before = SpikeMonitor(CFG)
    early = replay_partial(before, events[:cut])
    state = json.loads(json.dumps(before.to_dict(), allow_nan=False))
    after = SpikeMonitor.from_dict(state)
    late = replay(after, events[cut:])
    assert [a.model_dump() for a in early + late] == [a.model_dump() for a in whole]


def replay_partial(monitor: SpikeMonitor, events) -> list[Alert]:
    out = []
    for e in events:
        monitor.observe(e)
        out += monitor.advance()
    return out


def test_quiet_keys_are_forgotten_after_a_full_baseline_without_events(make_event):
    mon = SpikeMonitor(CFG.with_(baseline_buckets=20, warmup_buckets=5, sustained_buckets=(5,)))
    mon.observe(make_event("a", 0, tickers=[("XYZ", 1.0)]))
    mon.observe(make_event("b", 30 * 60, tickers=[("AAPL", 1.0)]))
    mon.advance(START + 31 * 60 + 30)
    assert "ticker:XYZ" not in mon.detectors and "ticker:AAPL" in mon.detectors


def test_one_post_full_of_cashtags_counts_toward_its_most_relevant_tickers_only(make_event):
    cfg = CFG.with_(max_tickers_per_event=10)
    mon = SpikeMonitor(cfg)
    tickers = [(f"T{i:04d}", 0.5) for i in range(3000)] + [("AAPL", 1.0)]
    mon.observe(make_event("spam", 0, tickers=tickers))
    mon.advance(START + 3600)
    keys = {k for k in mon.detectors if k.startswith("ticker:")}
    assert len(keys) == 10 and "ticker:AAPL" in keys
    assert len(json.dumps(mon.to_dict())) < 200_000


def test_live_keys_are_capped_by_forgetting_the_longest_quiet_one(make_event):
    mon = SpikeMonitor(CFG.with_(max_keys=5))
    for i, sym in enumerate(["A", "B", "C", "D", "E", "F"]):  # one new ticker a minute
        mon.observe(make_event(f"e{i}", i * 60, tickers=[(sym, 1.0)]))
    mon.advance(START + 10 * 60)
    assert len(mon.detectors) == 5
    # market and topic keys are busy every minute; the early, now quiet tickers made room
    assert "market" in mon.detectors and "ticker:F" in mon.detectors and "ticker:A" not in mon.detectors
