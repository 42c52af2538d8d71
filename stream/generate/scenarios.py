"""Scenarios layered on the background stream, e.g. a burst of negative news about one ticker.

CLI syntax: ``burst:TICKER@START[+DURATION][xRATE]``, seconds and events per second, e.g.
``burst:TSLA@30+20x5`` = from t=30 s for 20 s, 5 extra negative events/s about Tesla.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from stream.enrich.companies import BY_SYMBOL, canonical_symbol


@dataclass(frozen=True)
class NegativeBurst:
    ticker: str
    start_s: float
    duration_s: float = 60.0
    rate_per_s: float = 5.0
    social_fraction: float = 0.6

    def __post_init__(self) -> None:
        sym = canonical_symbol(self.ticker)
        if sym not in BY_SYMBOL:
            raise ValueError(f"unknown ticker {self.ticker!r}: not in the company dictionary")
        object.__setattr__(self, "ticker", sym)
        if self.start_s < 0 or self.duration_s <= 0 or self.rate_per_s <= 0:
            raise ValueError("burst needs start_s >= 0, duration_s > 0 and rate_per_s > 0")

    @property
    def name(self) -> str:
        return f"burst:{self.ticker}@{self.start_s:g}+{self.duration_s:g}x{self.rate_per_s:g}"

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


Scenario = NegativeBurst

_NUM = r"\d+(?:\.\d+)?"
_BURST = re.compile(rf"^burst:(?P<tk>[A-Za-z][A-Za-z.\-]{{0,9}})@(?P<start>{_NUM})(?:\+(?P<dur>{_NUM}))?(?:x(?P<rate>{_NUM}))?$")


def parse_scenario(spec: str) -> Scenario:
    """``burst:TSLA@30+20x5`` -> NegativeBurst('TSLA', 30, 20, 5). ValueError with the syntax on mismatch."""
    m = _BURST.match(spec.strip())
    if not m:
        raise ValueError(f"bad scenario {spec!r}; expected burst:TICKER@START[+DURATION][xRATE], e.g. burst:TSLA@30+20x5")
    kw: dict[str, float] = {"start_s": float(m["start"])}
    if m["dur"]:
        kw["duration_s"] = float(m["dur"])
    if m["rate"]:
        kw["rate_per_s"] = float(m["rate"])
    return NegativeBurst(m["tk"], **kw)


def parse_scenarios(specs: list[str] | tuple[str, ...] | None) -> list[Scenario]:
    return [parse_scenario(s) for s in (specs or ()) if s.strip()]
