"""The shape detector (what `marketpulse detect` runs): learns each series' own scale and shape."""
from __future__ import annotations

import json

import numpy as np
import pytest

from consumers.alerting.shape_detector import ShapeConfig, ShapeDetector, tail_probability

LEVEL = ShapeConfig(series_kind="level", baseline_buckets=600)
COUNT = ShapeConfig(series_kind="count", baseline_buckets=600)


def run(values, config=LEVEL, det=None):
    det = det or ShapeDetector(config)
    return det, [det.update(i * 300.0, float(v)) for i, v in enumerate(values)]


def alerts_at(steps) -> list[int]:
    return [i for i, s in enumerate(steps) if s.alert]


def calm(n=500, seed=0, sd=1.0, mean=20.0):
    return mean + np.random.default_rng(seed).normal(0, sd, n)


def after_calibration(steps, start=300) -> list[int]:
    # The first scores after warm-up calibrate on a short history and may still misfire once.
    return [i for i in alerts_at(steps) if i >= start]


def test_a_spike_after_a_long_calm_history_alerts_once():
    values = calm()
    values[450] += 15
    _, steps = run(values)
    assert after_calibration(steps) == [450]


def test_nothing_alerts_during_the_warm_up_however_wild():
    values = calm(140)
    values[60] += 100
    _, steps = run(values)
    assert not alerts_at(steps)
    assert steps[60].warming_up


def test_level_series_take_negative_values_and_count_series_refuse_them():
    values = calm(mean=-3.0)
    values[450] -= 12
    _, steps = run(values, LEVEL)
    assert 450 in alerts_at(steps)
    with pytest.raises(ValueError, match="count"):
        ShapeDetector(COUNT).update(0, -1.0)


def test_the_same_jump_scores_far_higher_in_a_calm_series_than_in_an_erratic_one():
    rng = np.random.default_rng(3)
    calm_series = 20 + rng.normal(0, 1, 500)
    erratic = 20 + rng.normal(0, 1, 500) + np.where(rng.random(500) < 0.05, rng.normal(0, 12, 500), 0)
    for s in (calm_series, erratic):
        s[480] = 34.0
    _, calm_steps = run(calm_series)
    _, erratic_steps = run(erratic)
    assert calm_steps[480].score > 3 * erratic_steps[480].score
    assert 480 in alerts_at(calm_steps) and 480 not in alerts_at(erratic_steps)


def test_a_recurring_daily_pattern_does_not_alert_once_learned_but_a_doubled_peak_does():
    day = np.arange(288)  # 5-minute buckets
    shape = 10 + 30 * np.exp(-((day - 150) / 12.0) ** 2)
    rng = np.random.default_rng(5)
    values = np.concatenate([shape + rng.normal(0, 0.5, 288) for _ in range(6)])
    quiet = values.copy()
    values[5 * 288 + 130: 5 * 288 + 170] *= 2  # day 6's peak is twice as high
    _, steps_quiet = run(quiet, LEVEL.with_(baseline_buckets=1500))
    _, steps = run(values, LEVEL.with_(baseline_buckets=1500))
    assert not [i for i in alerts_at(steps_quiet) if i >= 2 * 288]
    assert [i for i in alerts_at(steps) if 5 * 288 + 130 <= i < 5 * 288 + 175]


def test_cooldown_suppresses_a_second_opening_and_zero_cooldown_allows_it():
    values = calm(600)
    values[450] += 15
    values[470] += 15
    _, steps = run(values)
    assert after_calibration(steps) == [450]
    _, steps = run(values, LEVEL.with_(cooldown_buckets=0))
    assert after_calibration(steps, 400) == [450, 470]


def test_severity_follows_the_evidence_and_a_warning_escalates_once():
    values = calm(600)
    values[450] += 15
    _, steps = run(values, LEVEL.with_(critical_threshold=1000.0))
    assert steps[450].severity == "warning"
    _, steps = run(values, LEVEL.with_(critical_threshold=6.0))
    assert steps[450].severity == "critical"
    ramp = calm(600)
    ramp[450:456] += np.array([6, 9, 14, 20, 28, 40])
    _, steps = run(ramp, LEVEL.with_(threshold=2.0, critical_threshold=20.0))
    opened = alerts_at(steps)
    escalations = [i for i, s in enumerate(steps) if s.escalated]
    assert opened and opened[0] < 456 and len(escalations) <= 1
    if escalations:
        assert steps[escalations[0]].severity == "critical" and escalations[0] > opened[0]


def test_count_series_below_min_volume_never_alert():
    rng = np.random.default_rng(1)
    values = rng.poisson(0.2, 500).astype(float)
    values[450] = 4  # unusual, but fewer than min_volume events
    _, steps = run(values, COUNT)
    assert 450 not in alerts_at(steps)
    _, steps = run(values, COUNT.with_(min_volume=1.0))
    assert 450 in alerts_at(steps)


def test_a_total_volume_is_refused_it_belongs_to_the_volume_detector():
    with pytest.raises(ValueError, match="negative and total volume go to the volume detector"):
        ShapeDetector(COUNT).update(0.0, 3.0, 10.0)


def office_hours(days=10, seed=5):
    """5-minute level series: 10 from 08:00 to 18:00 UTC, 2 otherwise, a little noise."""
    hours = (np.arange(days * 288) * 300.0 % 86_400) / 3600
    return np.where((hours >= 8) & (hours < 18), 10.0, 2.0) + np.random.default_rng(seed).normal(0, 0.3, hours.size)


# Days of 5-minute buckets: the default history (3000 buckets, ~10 days) holds every hour often.
DAYS = ShapeConfig(series_kind="level")


def test_a_familiar_value_at_an_unusual_hour_alerts_through_the_same_hour_comparison():
    values = office_hours()
    late = 8 * 288 + 8 * 12  # day 9, 08:00: the daily rise does not come until noon
    values[late : late + 48] = 2.0 + np.random.default_rng(6).normal(0, 0.3, 48)
    _, steps = run(values, DAYS)
    assert any(late < i < late + 48 for i in alerts_at(steps))
    # Without the clock the low stretch looks like any night: nothing to see.
    _, blind = run(values, DAYS.with_(time_of_day_s=0))
    assert not any(late <= i < late + 48 for i in alerts_at(blind))
    assert all(s.time_of_day_score is None for s in blind)


def test_the_daily_rhythm_itself_does_not_alert():
    _, steps = run(office_hours(seed=7), DAYS)
    assert after_calibration(steps, start=3 * 288) == []


def test_state_round_trips_through_json_and_resumes_bit_identically():
    values = calm(700, seed=9)
    values[600] += 15
    _, whole = run(values)
    assert any(s.time_of_day_score is not None for s in whole[300:])  # the same-hour state resumes too
    det, _ = run(values[:300])
    resumed = ShapeDetector.from_dict(json.loads(json.dumps(det.to_dict())))
    rest = [resumed.update((300 + i) * 300.0, float(v)) for i, v in enumerate(values[300:])]
    assert [s.to_dict() for s in rest] == [s.to_dict() for s in whole[300:]]


def test_a_state_of_another_version_or_shape_is_refused():
    det, _ = run(calm(200))
    state = det.to_dict()
    with pytest.raises(ValueError, match="version"):
        ShapeDetector.from_dict({**state, "version": 99})
    with pytest.raises(ValueError, match="configuration"):
        ShapeDetector.from_dict(state, LEVEL.with_(shape_lengths=(1, 8)))


def test_memory_per_series_is_bounded_by_the_baseline():
    det, _ = run(calm(2000), LEVEL.with_(baseline_buckets=300))
    state = det.to_dict()
    assert len(state["values"]) == len(state["times"]) == 301
    assert all(len(v) <= 300 for v in [*state["scores"].values(), state["time_of_day_scores"]])


@pytest.mark.parametrize("bad", [
    dict(series_kind="money"), dict(threshold=1.0, clear_threshold=2.0), dict(shape_lengths=(0,)),
    dict(baseline_buckets=20, shape_lengths=(24,)), dict(tail_quantile=1.0), dict(cooldown_buckets=-1),
    dict(time_of_day_s=-1), dict(time_of_day_s=86_400),
])
def test_bad_configuration_is_refused(bad):
    with pytest.raises(ValueError):
        ShapeConfig(**bad)


def test_tail_probability_is_one_inside_the_bulk_and_keeps_falling_beyond_the_largest_score():
    hist = np.random.default_rng(0).exponential(1.0, 2000)
    assert tail_probability(hist, float(np.median(hist)), 0.97) == 1.0
    top = float(hist.max())
    assert tail_probability(hist, top + 5, 0.97) < tail_probability(hist, top, 0.97) < 0.03


def test_tail_probability_of_a_series_that_nearly_always_repeats_itself_is_its_rank():
    # 998 identical scores: no tail to fit, yet a score above all of them is rare, not ordinary.
    hist = np.concatenate([np.zeros(998), [0.5, 0.7]])
    assert tail_probability(hist, 1.0, 0.97) == pytest.approx(1 / 1001)
    assert tail_probability(hist, 0.6, 0.97) == pytest.approx(2 / 1001)
    assert tail_probability(hist, 0.0, 0.97) == 1.0
