"""SpikeMonitor: labeled events in, alerts out. Windowing + one detector per key.

The live alerter calls ``observe(event)`` for each event from ``marketpulse.events`` and
``advance(watermark)`` as time moves on (e.g. the largest ``published_at`` seen, or that minus a
safety margin); replays do exactly the same, so they give the same alerts with the same ids.
Nothing here reads the wall clock.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from consumers.alerting.alert import build_alert
from marketpulse.schemas import Alert
from consumers.alerting.buckets import BucketAggregator, BucketStats, ClosedBucket
from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector, to_epoch
from marketpulse.schemas import LabeledEvent

STATE_VERSION = 1


class SpikeMonitor:
    def __init__(self, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        c = self.config
        self.buckets = BucketAggregator(c.bucket_s, c.allowed_lateness_s, c.max_contributors, c.max_tickers_per_event)
        self.keys_refused = 0  # new keys not tracked because every tracked key was in an incident
        self.detectors: dict[str, SpikeDetector] = {}
        # Buckets in a row without events per key; idle keys are dropped to bound memory.
        self.idle: dict[str, int] = {}

    def observe(self, event: LabeledEvent) -> bool:
        """Count one labeled event (a near-duplicate as amplification). False if it was too late
        or a redelivery."""
        return self.buckets.add(event)

    def advance(self, watermark: datetime | float | None = None) -> list[Alert]:
        """Close every bucket that ends at least ``allowed_lateness_s`` before the watermark
        (default: the latest event time seen) and return the alerts they raise, in time order."""
        if watermark is None:
            if self.buckets.max_event_time is None:
                return []
            watermark = self.buckets.max_event_time
        alerts: list[Alert] = []
        for bucket in self.buckets.close_until(to_epoch(watermark)):
            alerts.extend(self._evaluate(bucket))
        return alerts

    def _evaluate(self, bucket: ClosedBucket) -> list[Alert]:
        alerts = []
        empty = BucketStats()
        # Known keys first, then new ones busiest first: if room runs out, the busiest new keys get it.
        new = sorted((k for k in bucket.stats if k not in self.detectors), key=lambda k: (-bucket.stats[k].total, k))
        for key in sorted(self.detectors) + new:
            stats = bucket.stats.get(key, empty)
            det = self.detectors.get(key)
            if det is None:
                if not self._make_room(bucket):
                    self.keys_refused += 1
                    continue
                det = self.detectors[key] = SpikeDetector(self.config)
            step = det.update(bucket.start, stats.negative, stats.total)
            if step.alert or step.escalated:
                alerts.append(build_alert(
                    key=key,
                    incident_start=step.incident_start if step.incident_start is not None else bucket.start,
                    window_end=bucket.end,
                    observed=step.observed,
                    expected=step.expected,
                    score=step.score,
                    severity=step.severity or "warning",
                    status="opened" if step.alert else "escalated",
                    contributors=stats.contributors(),
                    total=stats.total,
                    expected_share=step.expected_share,
                    drilldown_from=bucket.start,
                    amplification=stats.amplification(self.config.max_contributors),
                ))
            self.idle[key] = 0 if stats.events or stats.copies else self.idle.get(key, 0) + 1
            if self.idle[key] >= self.config.baseline_buckets and not det.active:
                # Its whole baseline is empty: a fresh detector would behave the same.
                del self.detectors[key], self.idle[key]
        return alerts

    def _make_room(self, bucket: ClosedBucket) -> bool:
        """Below ``max_keys`` detectors, or after forgetting the key quiet for longest (never one
        in an incident or with events in this bucket): bounded memory and snapshot size whatever
        the stream names."""
        if len(self.detectors) < self.config.max_keys:
            return True
        idle = [(n, k) for k, n in self.idle.items()
                if k in self.detectors and k not in bucket.stats and not self.detectors[k].active]
        if not idle:
            return False
        _, victim = max(idle)
        del self.detectors[victim], self.idle[victim]
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (open buckets and every detector) to resume after a restart."""
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "buckets": self.buckets.to_dict(),
            "detectors": {k: d.to_dict() for k, d in self.detectors.items()},
            "idle": dict(self.idle),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: DetectorConfig | None = None) -> "SpikeMonitor":
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported monitor state version {data.get('version')!r}")
        mon = cls(config or DetectorConfig.from_dict(data["config"]))
        mon.buckets.load(data["buckets"])
        mon.detectors = {k: SpikeDetector.from_dict(d, mon.config) for k, d in data["detectors"].items()}
        mon.idle = {k: int(v) for k, v in data["idle"].items()}
        return mon
