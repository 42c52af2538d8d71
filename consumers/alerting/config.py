"""Detector configuration: one place that maps ``AlertSettings`` onto the detector's knobs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from marketpulse.settings import AlertSettings


# The fields an operator sets (``alerts:`` in the settings); their defaults and checks live in
# AlertSettings only.
SETTINGS_FIELDS = ("bucket_s", "baseline_buckets", "warmup_buckets", "min_volume", "threshold",
                   "critical_threshold", "clear_threshold", "cooldown_buckets", "allowed_lateness_s",
                   "max_tickers_per_event", "max_keys")
_SETTINGS = AlertSettings()


@dataclass(frozen=True)
class DetectorConfig:
    """Everything the windowing and the spike detector need.

    The fields of ``SETTINGS_FIELDS`` come from ``AlertSettings`` (same defaults, same checks); the
    rest are detector internals whose defaults were tuned on ``bench/eval_detector.py`` and rarely
    need changing.
    """

    bucket_s: int = _SETTINGS.bucket_s
    baseline_buckets: int = _SETTINGS.baseline_buckets
    warmup_buckets: int = _SETTINGS.warmup_buckets
    min_volume: float = _SETTINGS.min_volume
    threshold: float = _SETTINGS.threshold
    critical_threshold: float = _SETTINGS.critical_threshold
    clear_threshold: float = _SETTINGS.clear_threshold
    cooldown_buckets: int = _SETTINGS.cooldown_buckets
    # The negative share must also be this unusual (robust z) when a total volume is known, so
    # chatter bursts with an ordinary mix of sentiment do not alert. At 2.0, chatter bursts caused
    # most false alerts of the synthetic suite (0.48 per series-day); 2.5 cut them to ~0.15 with
    # clear incidents still found (bench/eval_detector.py, three seeds).
    share_threshold: float = 2.5
    # The relative wander of the negative share beyond binomial noise that is always assumed
    # (classifier noise, topic mix, news days): at hundreds of mentions per bucket the binomial
    # spread alone is so narrow that an ordinary mix a few percent off would look extreme.
    share_dispersion: float = 0.07
    # Also score the means of the last N standardised residuals (one score per N): a sustained
    # rise that is modest in every single bucket (gradual ramps, overdispersed busy series) or a
    # short burst of a few buckets (N <= burst_max_buckets) still stands out.
    sustained_buckets: tuple[int, ...] = (3, 5, 20)
    # Windows up to this length are "burst" windows: their residuals are capped at ``threshold``
    # instead of ``clear_threshold``, so 2-4 strongly elevated buckets add up, while one spike
    # alone (at most threshold/w in the mean) still cannot open an incident through them.
    burst_max_buckets: int = 3
    # While the volume evidence is elevated (>= clear_threshold) or an incident is open, new
    # values do not enter the baseline (the oldest ones are kept), so a slow ramp cannot lift
    # its own baseline. At most this many buckets in a row, so a lasting level shift is learned.
    freeze_max_buckets: int = 60
    # Floor for the robust spread in Anscombe units: a Poisson count has spread 1 there, so
    # quiet series cannot produce huge scores from a couple of events.
    min_sigma: float = 1.0
    # Time-of-day profile: slot length and how many days its running mean remembers.
    season_slot_s: int = 1800
    season_days: float = 3.0
    # "count": non-negative event counts (mentions per bucket; a missing bucket is 0).
    # "level": any other measurement (latency, CPU %, price); a missing bucket is unknown.
    series_kind: Literal["count", "level"] = "count"
    # Windowing.
    allowed_lateness_s: int = _SETTINGS.allowed_lateness_s
    max_contributors: int = 5
    # Bounded state: tickers one event may count toward, and live keys (detectors).
    max_tickers_per_event: int = _SETTINGS.max_tickers_per_event
    max_keys: int = _SETTINGS.max_keys

    def __post_init__(self) -> None:
        # pydantic's ValidationError is a ValueError: the same message as a bad settings file.
        AlertSettings.model_validate({f: getattr(self, f) for f in SETTINGS_FIELDS})
        if self.min_sigma <= 0 or self.share_dispersion < 0:
            raise ValueError("min_sigma must be > 0 and share_dispersion >= 0")
        object.__setattr__(self, "sustained_buckets", tuple(int(w) for w in self.sustained_buckets))
        if any(w < 2 or w > self.baseline_buckets for w in self.sustained_buckets):
            raise ValueError("sustained_buckets must lie in [2, baseline_buckets]")
        if self.burst_max_buckets < 0 or self.freeze_max_buckets < 0:
            raise ValueError("burst_max_buckets and freeze_max_buckets must be >= 0")
        if self.season_slot_s < 1 or self.season_days <= 0:
            raise ValueError("season_slot_s >= 1 and season_days > 0 are required")
        if self.series_kind not in ("count", "level"):
            raise ValueError("series_kind must be 'count' or 'level'")
        if self.max_contributors < 0:
            raise ValueError("max_contributors must be >= 0")

    @classmethod
    def from_settings(cls, alerts: AlertSettings, **overrides: Any) -> "DetectorConfig":
        """The live alerter's and `marketpulse detect`'s configuration."""
        base: dict[str, Any] = {f: getattr(alerts, f) for f in SETTINGS_FIELDS}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def with_(self, **changes: Any) -> "DetectorConfig":
        """A copy with ``changes``; None leaves a field as it is (as in ShapeConfig.with_)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DetectorConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
