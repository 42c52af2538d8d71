"""Time-of-day profile of a series, separately for weekdays and weekends.

Market chatter follows market hours: the open and the close are busy every weekday and Saturday
mornings are quiet. The profile holds, per (weekday|weekend, slot of the day), a running mean of
the variance-stabilised value, so the detector can expect the 09:30 surge instead of alerting on it.
It uses UTC slots; only differences between slots matter, so no market time zone is needed.
"""
from __future__ import annotations

from typing import Any

import numpy as np

DAY_S = 86_400


class SeasonalProfile:
    def __init__(self, bucket_s: int, slot_s: int, days: float):
        self.slot_s = min(max(slot_s, bucket_s), DAY_S)
        self.slots_per_day = max(1, DAY_S // self.slot_s)
        # Observations one slot receives in one day; a slot is trusted after one full day of them.
        self.per_day = max(1, self.slot_s // max(bucket_s, 1))
        self.alpha = 1.0 / (self.per_day * days)
        self.mean = np.zeros(2 * self.slots_per_day)
        self.count = np.zeros(2 * self.slots_per_day, dtype=np.int64)

    def slot(self, ts: float) -> int:
        day = int(ts // DAY_S)
        weekend = (day + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0)
        within = min(int((ts - day * DAY_S) // self.slot_s), self.slots_per_day - 1)
        return within + (self.slots_per_day if weekend else 0)

    def learned(self, slots: np.ndarray | int) -> bool:
        return bool(np.min(self.count[slots]) >= self.per_day)

    def update(self, slot: int, y: float) -> None:
        self.count[slot] += 1
        # Running mean until the slot has enough data, then an exponential memory of `days` days.
        a = max(self.alpha, 1.0 / self.count[slot])
        self.mean[slot] += a * (y - self.mean[slot])

    def to_dict(self) -> dict[str, Any]:
        return {"mean": [float(v) for v in self.mean], "count": [int(v) for v in self.count]}

    def load(self, data: dict[str, Any]) -> None:
        mean, count = np.asarray(data["mean"], dtype=float), np.asarray(data["count"], dtype=np.int64)
        if mean.shape != self.mean.shape or count.shape != self.count.shape:
            raise ValueError("seasonal profile shape does not match the configuration")
        self.mean, self.count = mean, count
