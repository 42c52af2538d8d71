"""Spike detector for one count series, driven step by step.

Each step gets the negative volume of one bucket (and optionally the bucket's total volume):

1. Counts go through the Anscombe transform ``2*sqrt(x + 3/8)``, which makes Poisson noise roughly
   unit-variance at any level, so 3 events after 0 does not look like a 50-sigma event.
2. The expected value is the median of the key's own trailing ``baseline_buckets`` after removing
   the time-of-day profile (once the profile has seen a full day), plus the profile for now. The
   spread is the MAD of the same residuals (bursty, overdispersed series get a wider band), floored
   at ``min_sigma``. The standardised residual of this bucket is the one-bucket volume score.
3. With a total volume, the negative *share* is scored the same way (robust z of
   ``anscombe(neg) - anscombe(p * total)`` against its own history, ``p`` the baseline share).
   Unless the share is also unusual (``>= share_threshold``) the score is capped at the share
   score, so chatter bursts with an ordinary mix of sentiment do not alert.
4. The same is done for the means of the last N residuals (N in ``sustained_buckets``),
   standardised against the history of that mean; the score is the largest of these scores. In
   burst windows (N <= ``burst_max_buckets``) each residual is capped at ``threshold`` (a few
   strongly elevated buckets add up, one spike alone cannot alert), in the longer sustained
   windows at ``clear_threshold`` (many modestly elevated buckets: ramps, persistent rises).
5. An incident opens at ``score >= threshold`` (after warm-up, with at least ``min_volume``), stays
   open until the score falls under ``clear_threshold`` (here the share no longer caps it: once the
   negative surge is established, more volume is not evidence of calm) and is followed by ``cooldown_buckets``
   in which nothing new opens. One incident gives one alert (plus at most one escalation).
6. Values entering the baseline are capped at ``expected + threshold*sigma`` so an incident does
   not teach the baseline that incidents are normal; a lasting level shift is still absorbed.
   Once the time-of-day profile is trusted, buckets with windowed volume evidence >=
   ``clear_threshold`` (or inside an open incident) are kept out of the baseline altogether (the
   oldest values stay), at most ``freeze_max_buckets`` in a row, so a slow ramp cannot lift its
   own baseline before it crosses the threshold.

All state is plain numbers, so ``to_dict`` is JSON-safe and ``from_dict`` resumes exactly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from consumers.alerting.config import DetectorConfig
from consumers.alerting.seasonal import SeasonalProfile

Severity = Literal["warning", "critical"]
MAD_TO_SIGMA = 1.4826
STATE_VERSION = 2


def anscombe(x: Any) -> Any:
    return 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)


def inverse_anscombe(y: float) -> float:
    return max((y / 2.0) ** 2 - 0.375, 0.0)


def to_epoch(ts: float | int | datetime) -> float:
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()
    return float(ts)


def robust_center_spread(values: np.ndarray, floor: float) -> tuple[float, float]:
    """Median and MAD-based spread (floored)."""
    med = float(np.median(values))
    return med, max(MAD_TO_SIGMA * float(np.median(np.abs(values - med))), floor)


def share_residual(neg: np.ndarray, tot: np.ndarray, value: float, total: float, floor: float,
                   min_dispersion: float = 0.0) -> tuple[float | None, float | None]:
    """Robust z of a bucket's negative share against a history of (negative, total) volumes,
    and the history's share ``p``; (None, None) without a usable history.

    The residual ``anscombe(neg) - anscombe(p * total)`` has unit spread when the mix is binomial,
    but a real sentiment mix also wanders (news days, topic mix): that extra, multiplicative part
    grows with the volume, ``1 + phi^2 * p * total`` in variance. ``phi^2`` is read off the
    history's spread at its typical volume (never below ``min_dispersion^2``: at a few dozen
    mentions per bucket the binomial noise hides it), and the current bucket is judged at its own volume,
    so a chatter burst at 20x the usual volume with an ordinary, slightly drifted mix is not an
    extreme share, while a quiet hour keeps the binomial spread. Buckets without volume (a quiet
    night, a feed outage) say nothing about the mix and are left out: many of them would shrink
    the spread to nothing."""
    known = ~np.isnan(tot) & (tot > 0)
    if not known.any():
        return None, None
    neg, tot = neg[known], tot[known]
    denom = float(tot.sum())
    if denom <= 0:
        return None, None
    p = min(float(neg.sum()) / denom, 1.0)
    expected = p * tot
    med, sigma = robust_center_spread(anscombe(neg) - anscombe(expected), floor)
    typical = float(np.median(expected))
    extra = max(sigma * sigma - 1.0, 0.0) / typical if typical > 0 else 0.0  # phi^2
    extra = max(extra, min_dispersion * min_dispersion)
    spread = max(math.sqrt(1.0 + extra * p * total), floor)
    return (float(anscombe(value) - anscombe(p * total)) - med) / spread, p


@dataclass(frozen=True)
class DetectorStep:
    timestamp: float
    observed: float
    expected: float
    score: float
    volume_score: float
    share_score: float | None
    sustained_score: float | None
    share: float | None
    expected_share: float | None
    alert: bool  # a new incident opened at this step
    escalated: bool  # an open incident crossed the critical threshold at this step
    active: bool  # an incident is open after this step
    severity: Severity | None  # of the open incident
    warming_up: bool
    cooldown_left: int
    incident_start: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpikeDetector:
    """Robust, seasonal, hysteretic spike detector for one series. Not thread-safe."""

    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        c = self.config
        self.profile = SeasonalProfile(c.bucket_s, c.season_slot_s, c.season_days)
        size = c.baseline_buckets
        self._h: dict[str, np.ndarray] = {
            "y": np.zeros(size),  # transformed negative volume (capped)
            "neg": np.zeros(size),  # negative volume (capped)
            "total": np.full(size, np.nan),  # total volume, NaN when unknown
            "slot": np.zeros(size, dtype=np.int64),  # seasonal slot
            "rv": np.zeros(size),  # standardised volume residual (capped)
            "rs": np.full(size, np.nan),  # standardised share residual (capped), NaN when unknown
        }
        for w in c.sustained_buckets:  # windowed means of the residuals, one pair per window
            self._h[f"rv{w}"] = np.full(size, np.nan)
            self._h[f"rs{w}"] = np.full(size, np.nan)
        self._pos = 0
        self._n = 0
        self.steps = 0
        self.active = False
        self.severity: Severity | None = None
        self.cooldown_left = 0
        self.incident_start: float | None = None
        self.last_timestamp: float | None = None
        self.frozen_run = 0  # buckets in a row that were kept out of the baseline

    # -- scoring -----------------------------------------------------------------------------
    def _hist(self, name: str) -> np.ndarray:
        return self._h[name][: self._n]

    def _recent(self, name: str, k: int) -> np.ndarray:
        """The last k stored values (fewer if the history is shorter)."""
        k = min(k, self._n)
        size = self.config.baseline_buckets
        idx = (self._pos - 1 - np.arange(k)) % size
        return self._h[name][idx]

    def _volume_baseline(self, slot: int) -> tuple[float, float, bool]:
        y, slots = self._hist("y"), self._hist("slot")
        seasonal = self.profile.learned(slot) and self.profile.learned(slots)
        resid = y - self.profile.mean[slots] if seasonal else y
        med, sigma = robust_center_spread(resid, self.config.min_sigma)
        return med + (float(self.profile.mean[slot]) if seasonal else 0.0), sigma, seasonal

    def _share_residual(self, value: float, total: float) -> tuple[float | None, float | None]:
        c = self.config
        return share_residual(self._hist("neg"), self._hist("total"), value, total, c.min_sigma,
                              c.share_dispersion)

    def _cap(self, w: int) -> float:
        # Each bucket adds at most this much to a windowed mean, so the long (sustained) windows
        # measure "many buckets elevated" and a single spike does not linger in them for N
        # buckets; the short (burst) windows allow up to ``threshold`` per bucket, so a single
        # spike adds at most threshold/w there and only several elevated buckets together count.
        c = self.config
        return c.threshold if w <= c.burst_max_buckets else max(c.clear_threshold, 1.0)

    @property
    def _arrays(self) -> list[str]:
        return list(self._h)

    def _sustained(self, name: str, w: int, current: float) -> tuple[float | None, float | None]:
        """Mean of the last w residuals and its robust z against the history of that mean."""
        if self._n < w - 1:
            return None, None
        prev = self._recent(name, w - 1)
        if np.isnan(prev).any():
            return None, None
        cap = self._cap(w)
        mean = (float(np.minimum(prev, cap).sum()) + min(current, cap)) / w
        hist = self._hist(f"{name}{w}")
        hist = hist[~np.isnan(hist)]
        if len(hist) < self.config.warmup_buckets:
            return mean, None
        med, spread = robust_center_spread(hist, 1.0 / math.sqrt(w))
        return mean, (mean - med) / spread

    def _combine(self, volume: float | None, share: float | None) -> float | None:
        if volume is None:
            return None
        if share is None or share >= self.config.share_threshold:
            return volume
        return min(volume, share)

    # -- stepping ----------------------------------------------------------------------------
    def update(self, timestamp: float | datetime, value: float, total: float | None = None) -> DetectorStep:
        """Feed one bucket (in time order) and get its score and alert decision."""
        c = self.config
        ts = to_epoch(timestamp)
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"value must be a finite count >= 0, got {value!r}")
        if total is not None:
            total = float(total)
            if not math.isfinite(total) or total < 0:
                raise ValueError(f"total must be a finite count >= 0, got {total!r}")
            total = max(total, value)
        y = float(anscombe(value))
        slot = self.profile.slot(ts)

        rs = p = None
        if self._n == 0:
            expected_y, sigma, rv, seasonal = y, c.min_sigma, 0.0, False
        else:
            expected_y, sigma, seasonal = self._volume_baseline(slot)
            rv = (y - expected_y) / sigma
            if total is not None:
                rs, p = self._share_residual(value, total)
        means: dict[str, float | None] = {}
        sustained = volume_only = None
        for w in c.sustained_buckets:
            means[f"rv{w}"], zv = self._sustained("rv", w, rv)
            means[f"rs{w}"], zs = self._sustained("rs", w, rs) if rs is not None else (None, None)
            if zv is None:
                continue
            z = self._combine(zv, zs if rs is not None else None)
            sustained = z if sustained is None else max(sustained, z)
            volume_only = zv if volume_only is None else max(volume_only, zv)
        one = self._combine(rv, rs)
        score = one if sustained is None else max(one, sustained)
        # An open incident closes on volume evidence alone (see the module docstring).
        hold_score = rv if volume_only is None else max(rv, volume_only)

        warming = self._n < c.warmup_buckets
        alert = escalated = False
        if self.active:
            if max(score, hold_score) < c.clear_threshold:
                self.active, self.severity, self.incident_start = False, None, None
                self.cooldown_left = c.cooldown_buckets
            elif score >= c.critical_threshold and self.severity != "critical":
                self.severity, escalated = "critical", True
        elif self.cooldown_left > 0:
            self.cooldown_left -= 1
        elif not warming and score >= c.threshold and value >= c.min_volume:
            alert, self.active, self.incident_start = True, True, ts
            self.severity = "critical" if score >= c.critical_threshold else "warning"

        # Keep the baseline free of a developing incident: while the windowed volume evidence is
        # elevated (a ramp or a level shift in progress) or an incident is open, the bucket does
        # not enter the baseline, for at most ``freeze_max_buckets`` in a row.
        evidence = -math.inf if volume_only is None else volume_only
        frozen = (seasonal and self._n == c.baseline_buckets and self.frozen_run < c.freeze_max_buckets
                  and (self.active or evidence >= c.clear_threshold))
        self.frozen_run = self.frozen_run + 1 if frozen else 0
        self._remember(ts, slot, y, value, total, expected_y, sigma, rv, rs, means, seasonal, frozen)
        return DetectorStep(
            timestamp=ts,
            observed=value,
            expected=inverse_anscombe(expected_y),
            score=round(score, 6),
            volume_score=round(rv, 6),
            share_score=None if rs is None else round(rs, 6),
            sustained_score=None if sustained is None else round(sustained, 6),
            share=(value / total) if total else None,
            expected_share=p,
            alert=alert,
            escalated=escalated,
            active=self.active,
            severity=self.severity,
            warming_up=warming,
            cooldown_left=self.cooldown_left,
            incident_start=self.incident_start,
        )

    def _remember(self, ts: float, slot: int, y: float, value: float, total: float | None,
                  expected_y: float, sigma: float, rv: float, rs: float | None,
                  means: dict[str, float | None], seasonal: bool, frozen: bool = False) -> None:
        cap_z = self.config.threshold
        i, h = self._pos, self._h
        h["rv"][i] = min(rv, cap_z)
        h["rs"][i] = np.nan if rs is None else min(rs, cap_z)
        for name, mean in means.items():
            h[name][i] = np.nan if mean is None else min(mean, cap_z)
        if frozen:
            # The slot keeps its old (oldest) baseline values: the baseline window reaches
            # further back instead of taking in this bucket. The recent residuals above are
            # always stored, the window scores need them.
            self._pos = (i + 1) % self.config.baseline_buckets
            self.steps += 1
            self.last_timestamp = ts
            return
        # Until the profile is trusted, it learns from the raw value: the very first market open
        # must teach it the open, not the capped version the flat baseline allowed.
        self.profile.update(slot, y if not seasonal else min(y, expected_y + cap_z * sigma))
        neg = value
        if self._n > 0 and y > expected_y + cap_z * sigma:
            y = expected_y + cap_z * sigma
            neg = inverse_anscombe(y)
            if total is not None:
                if rs is not None and rs < self.config.share_threshold:
                    # More volume with an ordinary mix (chatter, the first buckets after a feed
                    # outage): scale both down, so the share baseline keeps the bucket's mix.
                    total = total * neg / value
                else:
                    # The excess is an incident's negative volume: leave it out of both.
                    total = max(total - (value - neg), neg)
        h["y"][i], h["neg"][i], h["slot"][i] = y, neg, slot
        h["total"][i] = np.nan if total is None else total
        self._pos = (i + 1) % self.config.baseline_buckets
        self._n = min(self._n + 1, self.config.baseline_buckets)
        self.steps += 1
        self.last_timestamp = ts

    # -- persistence ---------------------------------------------------------------------------
    def _stored(self, name: str) -> list:
        # Ring order as is (with "pos"): sums over the history then add up bit-identically.
        arr = self._h[name][: self._n]
        if arr.dtype.kind == "i":
            return [int(v) for v in arr]
        return [None if math.isnan(v) else float(v) for v in arr]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; ``from_dict`` of it continues with identical outputs."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "pos": self._pos,
            "history": {name: self._stored(name) for name in self._arrays},
            "profile": self.profile.to_dict(),
            "steps": self.steps,
            "active": self.active,
            "severity": self.severity,
            "cooldown_left": self.cooldown_left,
            "incident_start": self.incident_start,
            "last_timestamp": self.last_timestamp,
            "frozen_run": self.frozen_run,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: DetectorConfig | None = None) -> "SpikeDetector":
        if data.get("version") not in (1, STATE_VERSION):
            raise ValueError(f"unsupported detector state version {data.get('version')!r}")
        det = cls(config or DetectorConfig.from_dict(data["config"]))
        size = det.config.baseline_buckets
        hist = dict(data["history"])
        n = len(hist["y"])
        # Older states (version 1, or another set of windows) lack some window histories: those
        # start unknown (NaN) and their scores resume once they have filled again.
        for name in det._h:
            if name not in hist and name[:2] in ("rv", "rs") and name[2:].isdigit():
                hist[name] = [None] * n
        if n > size or set(hist) != set(det._h) or any(len(v) != n for v in hist.values()):
            raise ValueError("detector state history does not match the configuration")
        for name in det._arrays:
            det._h[name][:n] = [np.nan if v is None else v for v in hist[name]]
        det._n, det._pos = n, int(data["pos"]) % size
        det.profile.load(data["profile"])
        det.steps = int(data["steps"])
        det.active = bool(data["active"])
        det.severity = data["severity"]
        det.cooldown_left = int(data["cooldown_left"])
        det.incident_start = data["incident_start"]
        det.last_timestamp = data["last_timestamp"]
        det.frozen_run = int(data.get("frozen_run", 0))
        return det
