"""Spike detector: one count series, step by step."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector
from marketpulse.settings import AlertSettings

MONDAY = 1_704_672_000  # 2024-01-08 00:00 UTC
CFG = DetectorConfig()


def run(values, totals=None, config: DetectorConfig = CFG, start: float = MONDAY):
    det = SpikeDetector(config)
    steps = []
    for i, v in enumerate(values):
        steps.append(det.update(start + i * config.bucket_s, v, None if totals is None else totals[i]))
    return det, steps


def poisson(mean, n, seed=0):
    return np.random.default_rng(seed).poisson(mean, n).astype(float)


def alerts(steps) -> list[int]:
    return [i for i, s in enumerate(steps) if s.alert]


def test_defaults_come_from_alert_settings():
    s = AlertSettings(threshold=5.0, cooldown_buckets=3, min_volume=2.0)
    cfg = DetectorConfig.from_settings(s)
    assert (cfg.threshold, cfg.cooldown_buckets, cfg.min_volume, cfg.bucket_s) == (5.0, 3, 2.0, 60)
    assert DetectorConfig.from_settings(AlertSettings()) == DetectorConfig()


def test_no_alert_during_warm_up_even_for_a_huge_value():
    values = [5, 5, 5, 500] + [5] * 20
    _, steps = run(values)
    assert steps[3].warming_up and not steps[3].alert
    assert alerts(steps) == []


def test_a_clear_spike_alerts_once_at_its_first_bucket():
    values = poisson(10, 300, seed=1)
    values[200:210] = 60
    _, steps = run(values)
    assert alerts(steps) == [200]
    assert steps[200].observed == 60 and steps[200].expected == pytest.approx(10, abs=2.5)
    assert all(s.active for s in steps[200:210])


def test_cooldown_suppresses_a_repeat_right_after_an_incident():
    values = poisson(10, 300, seed=2)
    values[200:203] = 60
    values[210:213] = 60  # the incident closes within a few buckets; this is inside the cooldown
    values[250:253] = 60  # after the cooldown: a new incident
    _, steps = run(values)
    assert alerts(steps) == [200, 250]
    assert not steps[209].active and steps[209].cooldown_left > 0
    assert steps[210].score >= CFG.threshold and not steps[210].alert


def test_zero_cooldown_lets_the_repeat_alert():
    values = poisson(10, 300, seed=2)
    values[200:203] = 60
    values[210:213] = 60
    _, steps = run(values, config=CFG.with_(cooldown_buckets=0))
    assert alerts(steps) == [200, 210]


def test_hysteresis_keeps_an_incident_open_between_clear_and_open_thresholds():
    values = poisson(10, 260, seed=3)
    values[200] = 60
    values[201:240] = 22  # clearly elevated but below the opening threshold on its own
    _, steps = run(values)
    assert alerts(steps) == [200]
    assert all(s.active for s in steps[200:220])
    assert all(CFG.clear_threshold <= max(s.score, s.volume_score) for s in steps[201:220])


def test_incident_closes_when_the_score_falls_under_the_clear_threshold():
    values = poisson(10, 260, seed=4)
    values[200:205] = 60
    _, steps = run(values)
    closing = next(i for i in range(201, 260) if not steps[i].active)
    assert closing <= 215
    assert steps[closing].cooldown_left == CFG.cooldown_buckets


def test_severity_is_critical_for_a_large_deviation_and_warning_for_a_moderate_one():
    base = poisson(10, 260, seed=5)
    moderate, huge = base.copy(), base.copy()
    moderate[200] = 32
    huge[200] = 200
    _, m = run(moderate)
    _, h = run(huge)
    assert m[200].alert and m[200].severity == "warning"
    assert CFG.threshold <= m[200].score < CFG.critical_threshold
    assert h[200].alert and h[200].severity == "critical"


def test_an_open_warning_escalates_once_when_it_turns_critical():
    values = poisson(10, 260, seed=5)
    values[200] = 32
    values[201:204] = 200
    _, steps = run(values)
    assert [i for i, s in enumerate(steps) if s.escalated] == [201]
    assert alerts(steps) == [200]


def test_low_volume_noise_does_not_alert():
    # A thin ticker: ~0.3 mentions/min for three days; single posts and pairs are normal.
    _, steps = run(poisson(0.3, 3 * 1440, seed=6))
    assert alerts(steps) == []


def test_a_few_mentions_after_silence_do_not_score_as_a_huge_deviation():
    _, steps = run([0.0] * 200 + [4.0] + [0.0] * 20)
    assert 2.0 < steps[200].score < CFG.threshold  # the variance floor, not 4 / 0
    assert alerts(steps) == []


def test_min_volume_blocks_alerts_on_tiny_counts():
    sensitive = CFG.with_(min_sigma=0.5)
    values = [0.0] * 200 + [4.0] + [0.0] * 20
    _, steps = run(values, config=sensitive)
    assert steps[200].score >= CFG.threshold  # unusual, but only four mentions
    assert alerts(steps) == []
    _, steps = run(values, config=sensitive.with_(min_volume=3.0))
    assert alerts(steps) == [200]


def daily_market_hours(days: int, bucket_s: int, seed: int) -> np.ndarray:
    n = days * 86400 // bucket_s
    hour = (np.arange(n) * bucket_s % 86400) / 3600
    session = (hour >= 13.5) & (hour < 20)
    rate = np.where(session, 40.0, 4.0)  # the open is a tenfold step, every day
    return np.random.default_rng(seed).poisson(rate).astype(float)


def test_a_recurring_daily_pattern_does_not_alert_once_learned():
    config = CFG.with_(bucket_s=300)
    values = daily_market_hours(5, 300, seed=7)
    _, steps = run(values, config=config)
    per_day = 86400 // 300
    assert alerts(steps[per_day:]) == []  # after the first day the open is expected
    # Same data without the time-of-day profile: the daily open looks like an incident.
    flat = CFG.with_(bucket_s=300, season_slot_s=86400)
    _, steps = run(values, config=flat)
    assert len(alerts(steps[per_day:])) >= 3


def test_a_burst_of_chatter_with_an_ordinary_sentiment_mix_does_not_alert_when_totals_are_known():
    rng = np.random.default_rng(8)
    totals = rng.poisson(40, 300).astype(float)
    totals[200:210] = rng.poisson(160, 10)  # four times the usual chatter...
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)  # ...with the usual 30 % negative
    _, with_totals = run(neg, totals)
    _, volume_only = run(neg)
    assert alerts(volume_only[190:])  # on volume alone it looks like an incident
    assert alerts(with_totals) == []


def test_a_negative_surge_alerts_when_totals_are_known():
    rng = np.random.default_rng(9)
    totals = rng.poisson(40, 300).astype(float)
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)
    neg[200:210] += 40
    totals[200:210] += 45
    _, steps = run(neg, totals)
    assert alerts(steps) == [200]
    assert steps[200].share > 0.5 and steps[200].expected_share == pytest.approx(0.3, abs=0.05)


def test_a_gradual_ramp_is_caught_by_the_sustained_score():
    values = poisson(20, 400, seed=10)
    ramp = np.linspace(0, 25, 60)
    values[250:310] += np.random.default_rng(11).poisson(ramp)
    _, steps = run(values)
    # On volume alone (no totals, so no share check) plain Poisson noise may also fire once
    # elsewhere; the ramp must be caught while it rises, first by the windowed score.
    fired = [i for i in alerts(steps) if 250 <= i < 310]
    assert fired and fired[0] < 290
    assert steps[fired[0]].sustained_score is not None


def test_state_round_trip_gives_identical_subsequent_outputs():
    rng = np.random.default_rng(12)
    totals = rng.poisson(30, 2200).astype(float)
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)
    neg[1500:1510] += 50
    totals[1500:1510] += 50
    det = SpikeDetector(CFG)
    for i in range(1505):  # stop in the middle of an incident
        det.update(MONDAY + 60 * i, neg[i], totals[i])
    assert det.active
    state = json.loads(json.dumps(det.to_dict(), allow_nan=False))  # JSON-safe
    clone = SpikeDetector.from_dict(state)
    for i in range(1505, 2200):
        a = det.update(MONDAY + 60 * i, neg[i], totals[i])
        b = clone.update(MONDAY + 60 * i, neg[i], totals[i])
        assert a == b


def test_state_of_another_shape_is_rejected():
    det, _ = run(poisson(5, 30))
    state = det.to_dict()
    with pytest.raises(ValueError):
        SpikeDetector.from_dict(state, CFG.with_(baseline_buckets=10))


def test_bad_values_are_rejected():
    det = SpikeDetector()
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            det.update(MONDAY, bad)


def test_a_short_burst_of_a_few_moderately_elevated_buckets_is_caught_by_the_burst_window():
    values = poisson(10, 300, seed=13)
    values[200:203] = 23  # about 3 sigma each: no single bucket opens an incident
    _, steps = run(values)
    assert alerts(steps[:200]) == []
    assert max(s.volume_score for s in steps[200:203]) < CFG.threshold
    fired = alerts(steps)
    assert len(fired) == 1 and 200 < fired[0] <= 203
    # The same burst without the short windows goes unnoticed.
    _, steps = run(values, config=CFG.with_(sustained_buckets=(5, 20)))
    assert alerts(steps) == []


def test_a_version_1_state_without_the_burst_window_history_still_resumes():
    det, _ = run(poisson(10, 60), config=CFG)
    state = det.to_dict()
    state["version"] = 1
    del state["frozen_run"]
    for name in ("rv3", "rs3"):
        del state["history"][name]
    clone = SpikeDetector.from_dict(state)
    assert clone.update(MONDAY + 60 * 60, 10.0).sustained_score is not None


def test_a_huge_chatter_burst_whose_mix_is_a_few_percent_off_is_not_an_extreme_share():
    # At 800 negative mentions the binomial spread of the share is about 1.6 %; a real mix wanders
    # more than that, so a burst at 20x the volume with 33 % instead of 30 % negative is ordinary.
    rng = np.random.default_rng(10)
    totals = rng.poisson(120, 300).astype(float)
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)
    totals[250] = 2400.0
    neg[250] = 0.33 * 2400
    _, steps = run(neg, totals)
    assert steps[250].share_score < CFG.share_threshold
    assert 250 not in alerts(steps)
    # With binomial noise alone the same bucket looks extreme: the wander is what keeps it ordinary.
    _, binomial_only = run(neg, totals, CFG.with_(share_dispersion=0.0))
    assert binomial_only[250].share_score > CFG.share_threshold


def test_a_feed_outage_does_not_bend_the_share_baseline():
    # Zero totals carry no mix, and the volume that resumes after the outage is capped against a
    # baseline that learned the silence: neither may make an ordinary mix look extreme later.
    rng = np.random.default_rng(11)
    totals = rng.poisson(60, 300).astype(float)
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)
    gap_totals, gap_neg = totals.copy(), neg.copy()
    gap_totals[100:250] = 0.0
    gap_neg[100:250] = 0.0
    _, steps = run(neg, totals)
    _, with_gap = run(gap_neg, gap_totals)
    # The share z after the outage is on the scale of the share z without it, not many times it.
    assert abs(with_gap[260].share_score) < max(2.0, 2 * abs(steps[260].share_score))
    assert all(abs(s.share_score) < CFG.share_threshold + 1 for s in with_gap[250:300])


def test_a_doubled_negative_share_at_ordinary_volume_is_still_extreme():
    rng = np.random.default_rng(12)
    totals = rng.poisson(60, 300).astype(float)
    neg = rng.binomial(totals.astype(int), 0.3).astype(float)
    neg[250] = 0.6 * totals[250]
    _, steps = run(neg, totals)
    assert steps[250].share_score > CFG.share_threshold
    assert alerts(steps) == [250]
