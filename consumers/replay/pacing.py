"""Replay speed: ``max`` (no waiting) or ``Nx`` (event time runs N times faster than the wall clock)."""
from __future__ import annotations

import re
import time
from collections.abc import Callable

_SPEED = re.compile(r"^(?P<n>\d+(?:\.\d+)?)x?$")


def parse_speed(spec: str) -> float | None:
    """``max`` -> None; ``10x`` or ``10`` -> 10.0."""
    s = spec.strip().lower()
    if s == "max":
        return None
    m = _SPEED.match(s)
    if not m or float(m["n"]) <= 0:
        raise ValueError(f"bad speed {spec!r}; use 'max' or a positive factor such as '10x'")
    return float(m["n"])


class Pacer:
    """Sleeps so that ``(event_ts - first_ts) / speed`` of wall time has passed before an event."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._origin: tuple[float, float] | None = None  # (first event time, wall time then)

    def wait(self, event_ts: float) -> float:
        """Returns the seconds slept."""
        if self.speed is None:
            return 0.0
        if self._origin is None:
            self._origin = (event_ts, self.clock())
            return 0.0
        due = self._origin[1] + (event_ts - self._origin[0]) / self.speed
        delay = due - self.clock()
        if delay > 0:
            self.sleep(delay)
            return delay
        return 0.0
