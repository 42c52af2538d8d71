"""Shape detector: an anomaly detector for any series, driven one bucket at a time.

What ``marketpulse detect`` runs. It learns each series' own scale and shape instead of assuming
a noise model, so the same defaults hold for mention counts, latencies, CPU percentages and
prices (measured on the NAB corpus of real series, see docs/alerting.md):

1. **Shapes at several scales.** For each length L in ``shape_lengths`` (1, 8 and 48 buckets by
   default) the last L values form a sub-sequence. Its nonconformity is the mean distance to its
   ``neighbours`` nearest sub-sequences in the key's history (the last ``baseline_buckets``
   values; windows overlapping the current one are excluded), in the series' own units.
   L = 1 sees values never seen before (spikes, level shifts), longer windows see
   changed shapes (a doubled daily peak, a flat stretch, a slow ramp). A daily or weekly rhythm
   in the history is part of "normal" without a seasonal model; what these comparisons cannot
   see is a familiar value at an unusual time of day (step 3).
2. **Calibrated against its own past.** Each scale's nonconformity is turned into a tail
   probability against the history of that scale's own nonconformities: the values above their
   ``tail_quantile`` are fitted with an exponential tail (peaks over threshold). A series whose
   shapes are always erratic therefore needs a far larger deviation than a calm one, which is
   what stops a noisy real series from crying wolf. The fit is scale-free, so the distances are
   not normalised: dividing them by a moving range of the history (as an earlier version did)
   made every level shift shrink all later distances, and the calibration then compared
   nonconformities measured in different units (NAB dev 62.9 with it, 67.0 without).
3. **Time of day.** The value is also compared with the values at the same clock time
   (``time_of_day_s`` either side, UTC) on earlier days: its ``neighbours`` nearest among them,
   calibrated the same way. This sees a familiar value at an unusual hour (the daily jump that
   does not come, a peak-hour level at night) that the clock-free comparisons cannot. It is
   combined with the shortest scale by the larger of the two: both ask "is this value unusual?",
   against all of the past or against the same hour's.
4. **Score** = ``-log10`` of the product of the scales' tail probabilities (evidence in decades):
   surprising at several scales at once is stronger evidence than at one.
5. **Incidents.** One opens at ``score >= threshold`` (after warm-up; count series need at least
   ``min_volume``), stays open while ``score >= clear_threshold`` (for at most
   ``cooldown_buckets``: a lasting change is then reported again rather than hiding what follows
   it), escalates once at ``critical_threshold``; no new one opens within ``cooldown_buckets`` of
   the last opening.
   One incident gives one alert (plus at most one escalation).

A series with a total volume (negative and total per bucket, the live alerter's input) goes to
the live alerter's volume detector instead (``series.detector_config``): on such series it is the
sharper one (docs/alerting.md, "Toward one detector").

Count series go through the Anscombe transform ``2*sqrt(x + 3/8)`` first, so Poisson noise has
the same spread at every level. Memory per key is bounded (``baseline_buckets`` values and as
many scores per scale); all state is plain numbers, so ``to_dict`` is JSON-safe and
``from_dict`` resumes with bit-identical outputs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from consumers.alerting.detector import Severity, anscombe, to_epoch

STATE_VERSION = 3  # 2: distances in the series' own units; times and same-hour scores kept; 3: no totals


@dataclass(frozen=True)
class ShapeConfig:
    """The shape detector's knobs; the defaults are the ones measured on the NAB dev corpus."""

    # "count": non-negative event counts (Anscombe-transformed); "level": any other measurement.
    series_kind: Literal["count", "level"] = "count"
    # History each series learns from, in buckets (bounded memory per series).
    baseline_buckets: int = 3000
    warmup_buckets: int = 15
    # Count series only: the smallest value that may open an incident.
    min_volume: float = 5.0
    # Scores are evidence in decades: -log10 of the product of the scales' tail probabilities.
    threshold: float = 3.75
    critical_threshold: float = 6.0
    clear_threshold: float = 1.0
    # Buckets after an opening in which no new incident opens (and the longest an incident lasts).
    cooldown_buckets: int = 100
    # Sub-sequence lengths (buckets) whose shapes are compared with the history: 1 sees new
    # values, longer ones changed shapes; nearest neighbours averaged per comparison.
    shape_lengths: tuple[int, ...] = (1, 8, 48)
    neighbours: int = 3
    # Half-width (seconds) of the same-hour comparison on earlier days; 0 turns it off. Values
    # less than two half-widths old are not "earlier days" and are left out.
    time_of_day_s: float = 1800.0
    # Shapes are compared once the history holds this many buckets: nearest neighbours among a
    # handful of windows say little, and such early scores would distort the calibration.
    min_history: int = 100
    # Each scale's nonconformity is calibrated on its own history: an exponential tail above
    # this quantile, once at least min_score_history scores exist.
    tail_quantile: float = 0.97
    min_score_history: int = 50

    def __post_init__(self) -> None:
        if self.series_kind not in ("count", "level"):
            raise ValueError("series_kind must be 'count' or 'level'")
        if self.baseline_buckets < 4 or self.warmup_buckets < 1:
            raise ValueError("baseline_buckets >= 4 and warmup_buckets >= 1 are required")
        if not 0 <= self.clear_threshold < self.threshold <= self.critical_threshold:
            raise ValueError("need 0 <= clear_threshold < threshold <= critical_threshold")
        if self.cooldown_buckets < 0 or self.min_volume < 0:
            raise ValueError("cooldown_buckets and min_volume must be >= 0")
        object.__setattr__(self, "shape_lengths", tuple(sorted({int(n) for n in self.shape_lengths})))
        if not self.shape_lengths or any(n < 1 or 2 * n + self.neighbours + 4 > self.baseline_buckets
                                         for n in self.shape_lengths):
            raise ValueError("shape_lengths must be >= 1 and leave room for neighbours in baseline_buckets")
        if self.neighbours < 1 or self.min_score_history < 5 or self.min_history < 1:
            raise ValueError("neighbours, min_history >= 1 and min_score_history >= 5 are required")
        if not 0 <= self.time_of_day_s <= 21_600:
            raise ValueError("time_of_day_s must lie in [0, 21600] (0 turns the same-hour comparison off)")
        if not 0.5 <= self.tail_quantile < 1:
            raise ValueError("tail_quantile must lie in [0.5, 1)")

    def with_(self, **changes: Any) -> "ShapeConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShapeConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def tail_probability(history: np.ndarray, score: float, quantile: float) -> float:
    """P(a score at least this large) from an exponential fit to the history's upper tail.

    Below the ``quantile`` of the history nothing is unusual (1.0); above it the excesses over
    that quantile are taken as exponential with their own mean, so the probability keeps
    falling beyond the largest score ever seen instead of stopping at 1/len(history)."""
    u = float(np.quantile(history, quantile))
    if score <= u:
        return 1.0
    excess = history[history > u] - u
    if excess.size < 3:
        # Too few scores above the quantile to fit a tail (a series that nearly always repeats
        # itself): the empirical rank says how rare the score is.
        return float((np.count_nonzero(history >= score) + 1) / (history.size + 1))
    beta = max(float(excess.mean()), 1e-12)
    return (1.0 - quantile) * math.exp(-(score - u) / beta)


class _Buffer:
    """The last ``size`` floats in order, in a flat array that shifts only when full (amortised O(1))."""

    def __init__(self, size: int):
        self.size = size
        self._a = np.empty(2 * size)
        self._n = 0

    def append(self, v: float) -> None:
        if self._n == self._a.size:
            self._a[: self.size - 1] = self._a[self._n - self.size + 1 : self._n]
            self._n = self.size - 1
        self._a[self._n] = v
        self._n += 1

    @property
    def values(self) -> np.ndarray:
        return self._a[max(0, self._n - self.size) : self._n]

    def __len__(self) -> int:
        return min(self._n, self.size)

    def load(self, values: list[float]) -> None:
        if len(values) > self.size:
            raise ValueError("detector state history does not match the configuration")
        self._a[: len(values)] = values
        self._n = len(values)


@dataclass
class Incidents:
    """One incident, one alert, over a stream of scores: opening, hysteresis, escalation, cooldown.

    Apart from the scoring because the scores never depend on past alerts: a recorded score
    stream can be replayed at other thresholds (``bench/eval_nab.py`` reports how the dev-corpus
    score moves with the threshold this way)."""

    threshold: float
    critical_threshold: float
    clear_threshold: float
    cooldown_buckets: int
    active: bool = False
    severity: Severity | None = None
    cooldown_left: int = 0
    start: float | None = None

    @classmethod
    def of(cls, config: "ShapeConfig") -> "Incidents":
        return cls(config.threshold, config.critical_threshold, config.clear_threshold, config.cooldown_buckets)

    def step(self, timestamp: float, score: float, can_open: bool) -> tuple[bool, bool]:
        """(opened, escalated) at this bucket; ``can_open`` False during warm-up or below the volume floor."""
        opened = escalated = False
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
        if self.active:
            # An incident lasts until its evidence fades, or at most one cooldown: a lasting
            # change is reported again then rather than hiding what follows it.
            if score < self.clear_threshold or (self.cooldown_buckets and self.cooldown_left == 0):
                self.active, self.severity, self.start = False, None, None
            elif score >= self.critical_threshold and self.severity != "critical":
                self.severity, escalated = "critical", True
        if not self.active and self.cooldown_left == 0 and can_open and score >= self.threshold:
            opened, self.active, self.start = True, True, timestamp
            self.severity = "critical" if score >= self.critical_threshold else "warning"
            self.cooldown_left = self.cooldown_buckets
        return opened, escalated


@dataclass(frozen=True)
class ShapeStep:
    timestamp: float
    observed: float
    expected: float
    score: float
    shape_scores: dict[int, float]  # evidence (decades) per sub-sequence length
    time_of_day_score: float | None  # evidence of the same-hour comparison, once it has a history
    alert: bool  # a new incident opened at this step
    escalated: bool  # an open incident crossed the critical threshold at this step
    active: bool  # an incident is open after this step
    severity: Severity | None  # of the open incident
    warming_up: bool
    can_open: bool  # past warm-up and above the volume floor: this bucket may open an incident
    cooldown_left: int
    incident_start: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ShapeDetector:
    """Multi-scale, self-calibrating, hysteretic anomaly detector for one series. Not thread-safe."""

    def __init__(self, config: ShapeConfig | None = None):
        self.config = config or ShapeConfig()
        c = self.config
        h = c.baseline_buckets
        # History holds one more value than the baseline: the current bucket's windows end there.
        self._values = _Buffer(h + 1)
        self._scores = {L: _Buffer(h) for L in c.shape_lengths}
        self._times = _Buffer(h + 1)  # aligned with _values
        self._tod_scores = _Buffer(h)
        self._observed = _Buffer(h)  # untransformed values: the "expected" level in alerts
        self.steps = 0
        self.incidents = Incidents.of(c)
        self.last_timestamp: float | None = None

    # -- scoring -----------------------------------------------------------------------------
    def _transform(self, value: float) -> float:
        return float(anscombe(value)) if self.config.series_kind == "count" else value

    def _nonconformity(self, L: int) -> float | None:
        """Mean distance of the last L values to their nearest earlier, non-overlapping windows."""
        v = self._values.values
        k = self.config.neighbours
        t = v.size - 1
        last_start = t - 2 * L + 1  # newest candidate window ends L buckets before the current one
        if v.size < self.config.min_history or last_start < k + 4:
            return None
        windows = sliding_window_view(v[: last_start + L], L)
        d = np.sqrt(((windows - v[t - L + 1 :]) ** 2).mean(axis=1))
        return float(np.partition(d, k - 1)[:k].mean())

    def _time_of_day_nonconformity(self) -> float | None:
        """Mean distance of the value to its nearest values at the same clock time on earlier days."""
        half = self.config.time_of_day_s
        v, t = self._values.values, self._times.values
        if not half or v.size < self.config.min_history:
            return None
        now = t[-1]
        clock_gap = np.abs((t[:-1] - now + 43_200.0) % 86_400.0 - 43_200.0)
        same_hour = v[:-1][(clock_gap <= half) & (t[:-1] < now - 2 * half)]
        k = self.config.neighbours
        if same_hour.size < k:
            return None
        return float(np.partition(np.abs(same_hour - v[-1]), k - 1)[:k].mean())

    def _evidence(self, score: float | None, history: _Buffer) -> float | None:
        """Decades of evidence of ``score`` against ``history``, which then takes it in."""
        if score is None:
            return None
        hist = history.values
        e = None
        if hist.size >= self.config.min_score_history:
            e = -math.log10(max(tail_probability(hist, score, self.config.tail_quantile), 1e-300))
        history.append(score)
        return e

    def _shape_evidence(self) -> dict[int, float]:
        evidence = {L: self._evidence(self._nonconformity(L), self._scores[L]) for L in self.config.shape_lengths}
        return {L: e for L, e in evidence.items() if e is not None}

    # -- stepping ----------------------------------------------------------------------------
    def update(self, timestamp: float | datetime, value: float, total: float | None = None) -> ShapeStep:
        """Feed one bucket (in time order) and get its score and alert decision."""
        c = self.config
        if total is not None:
            raise ValueError("the shape detector scores one series; negative and total volume go to the volume "
                             "detector (SpikeDetector)")
        ts = to_epoch(timestamp)
        value = float(value)
        if not math.isfinite(value) or (c.series_kind == "count" and value < 0):
            raise ValueError(f"value must be a finite {'count >= 0' if c.series_kind == 'count' else 'number'}, "
                             f"got {value!r}")
        expected = float(np.median(self._observed.values)) if len(self._observed) else value
        self._values.append(self._transform(value))
        self._times.append(ts)
        shapes = self._shape_evidence()
        tod = self._evidence(self._time_of_day_nonconformity(), self._tod_scores)
        shortest = shapes.get(c.shape_lengths[0], 0.0)
        score = sum(shapes.values()) - shortest + max(shortest, tod or 0.0)

        warming = self.steps < c.warmup_buckets or len(shapes) < len(c.shape_lengths)
        big_enough = c.series_kind != "count" or value >= c.min_volume
        inc = self.incidents
        can_open = not warming and big_enough
        alert, escalated = inc.step(ts, score, can_open)

        self._observed.append(value)
        self.steps += 1
        self.last_timestamp = ts
        return ShapeStep(
            timestamp=ts,
            observed=value,
            expected=expected,
            score=round(score, 6),
            shape_scores={L: round(e, 6) for L, e in shapes.items()},
            time_of_day_score=None if tod is None else round(tod, 6),
            alert=alert,
            escalated=escalated,
            active=inc.active,
            severity=inc.severity,
            warming_up=warming,
            can_open=can_open,
            cooldown_left=inc.cooldown_left,
            incident_start=inc.start,
        )

    # -- persistence ---------------------------------------------------------------------------
    @staticmethod
    def _stored(buf: _Buffer) -> list[float]:
        return [float(v) for v in buf.values]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; ``from_dict`` of it continues with identical outputs."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "values": self._stored(self._values),
            "scores": {str(L): self._stored(b) for L, b in self._scores.items()},
            "times": self._stored(self._times),
            "time_of_day_scores": self._stored(self._tod_scores),
            "observed": self._stored(self._observed),
            "steps": self.steps,
            "active": self.incidents.active,
            "severity": self.incidents.severity,
            "cooldown_left": self.incidents.cooldown_left,
            "incident_start": self.incidents.start,
            "last_timestamp": self.last_timestamp,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: ShapeConfig | None = None) -> "ShapeDetector":
        # Version 2 also kept totals, which this detector no longer takes: the rest resumes as it was.
        if data.get("version") not in (2, STATE_VERSION):
            raise ValueError(f"unsupported detector state version {data.get('version')!r}")
        det = cls(config or ShapeConfig.from_dict(data["config"]))
        if set(data["scores"]) != {str(L) for L in det.config.shape_lengths}:
            raise ValueError("detector state history does not match the configuration")
        det._values.load(data["values"])
        for L, buf in det._scores.items():
            buf.load(data["scores"][str(L)])
        det._times.load(data["times"])
        det._tod_scores.load(data["time_of_day_scores"])
        det._observed.load(data["observed"])
        det.steps = int(data["steps"])
        inc = det.incidents
        inc.active, inc.severity = bool(data["active"]), data["severity"]
        inc.cooldown_left, inc.start = int(data["cooldown_left"]), data["incident_start"]
        det.last_timestamp = data["last_timestamp"]
        return det
