"""Event time for windowing, shared by the live alerter and replays.

The watermark is the event time up to which the stream is taken as complete; windows close once it
has passed their end by ``allowed_lateness_s``. Three rules make it robust:

* **Partitions**: while catching up, one poll may bring minutes of one partition before another's;
  the watermark is the slowest partition that still has a backlog, and the newest event time only
  once every partition is caught up.
* **Future skew**: an event dated more than ``max_future_skew_s`` after the wall clock (a producer
  whose clock runs ahead, a typo in a year) is not admitted: it cannot move the watermark, so it
  cannot close the windows every later real event falls into.
* **Quiet streams**: with no events for a while, event time moves on with the wall clock, so the
  last windows still close.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable


class EventClock:
    def __init__(self, allowed_lateness_s: float, max_future_skew_s: float,
                 wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.max_future_skew_s = float(max_future_skew_s)
        self._wall, self._monotonic = wall, monotonic
        self.partition_time: dict[int, float] = {}  # latest admitted event time per partition
        self._last_event = monotonic()

    def admits(self, event_time: float) -> bool:
        """False for an event dated beyond the future-skew bound."""
        return event_time <= self._wall() + self.max_future_skew_s

    def observe(self, partition: int, event_time: float) -> bool:
        """Record an event's time; False (and nothing recorded) if it is not admitted."""
        if not self.admits(event_time):
            return False
        self.partition_time[partition] = max(event_time, self.partition_time.get(partition, event_time))
        self._last_event = self._monotonic()
        return True

    @property
    def latest(self) -> float | None:
        return max(self.partition_time.values(), default=None)

    def watermark(self, lagging: Iterable[int] = ()) -> float | None:
        """Event time every partition has reached. ``lagging``: partitions with a backlog still to
        read. None while a lagging partition was not read yet (its events may be older)."""
        lagging = list(lagging)
        if any(p not in self.partition_time for p in lagging):
            return None
        times = [self.partition_time[p] for p in lagging] or list(self.partition_time.values())
        if not times:
            return None
        mark = min(times) if lagging else max(times)
        return min(mark, self._wall() + self.max_future_skew_s)

    def idle_watermark(self, idle_after_s: float) -> float | None:
        """With no event for ``idle_after_s`` of wall time: the newest event time plus the quiet time
        since (capped like every watermark); else None."""
        quiet = self._monotonic() - self._last_event
        latest = self.latest
        if latest is None or quiet < idle_after_s:
            return None
        return min(latest + quiet, self._wall() + self.max_future_skew_s)

    def releases(self, event_time: float, lagging_times: Iterable[float]) -> bool:
        """For reordering readers: an event may leave the reorder buffer once every unfinished
        partition has moved ``allowed_lateness_s`` past it."""
        low = min(lagging_times, default=float("inf"))
        return event_time <= low - self.allowed_lateness_s
