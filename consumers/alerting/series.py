"""Backtest of one series from CSV: what ``marketpulse detect`` runs.

Real exports are rarely tidy, so the rows are cleaned before the detector sees them:

* rows are sorted by timestamp (stable, so equal timestamps keep their file order);
* rows with the same timestamp are merged: summed for a count series, averaged for a level
  series. ``aggregate="auto"`` treats the series as counts iff every value is a non-negative
  integer; ``"sum"`` / ``"mean"`` force count / level;
* gaps (missing intervals on the inferred grid) stay gaps, except in a sparse count series (one
  that reports zeros itself), where a missing bucket means "nothing happened" and is filled with
  a 0 row (``filled=True``) as long as the gap is short (``max_fill_s``, ``max_fill_buckets``).
  A count series that never reports 0 (vehicles per interval, requests per minute) is not sparse:
  its missing rows are missing data, and zeros there would be alerts about nothing;
* ``CleanSummary`` records what was fixed, for the user to check.

A series with a ``total`` column is the live alerter's input (negative and total volume per
bucket, as the alerter's buckets or an export of them hold): its rows are volumes, summed when
merged, and ``detect`` runs the alerter's own volume detector on it with the ``alerts`` settings,
so a backtest of exported buckets raises the alerts the alerter would have raised. Any other
series goes to the shape detector (docs/alerting.md says why the two differ).
"""
from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Literal

from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import DetectorStep, SpikeDetector
from consumers.alerting.shape_detector import ShapeConfig, ShapeDetector, ShapeStep
from marketpulse.settings import AlertSettings

Aggregate = Literal["auto", "sum", "mean"]
SeriesKind = Literal["count", "level"]
AGGREGATES: tuple[str, ...] = ("auto", "sum", "mean")
# A short outage in a count export means "no events"; a long one is more likely a collection gap,
# and filling it would also create very many rows (a day of 1-second buckets is 86,400 of them).
FILL_MAX_S = 86_400.0
FILL_MAX_BUCKETS = 1_440
OUTPUT_COLUMNS = ("timestamp", "value", "score", "alert", "severity", "filled")


class SeriesError(ValueError):
    """A problem with the input CSV, with the row number (header = row 1) where known."""


@dataclass(frozen=True)
class SeriesRow:
    timestamp_raw: str  # as written in the input (first row's for merged rows; generated if filled)
    timestamp: float
    value: float
    value_raw: str  # what the output shows: the input text, or the merged/filled value
    total: float | None
    row: int | None = None  # input row number (header = 1); the first one for merged rows
    merged: int = 1  # input rows folded into this one
    filled: bool = False  # a zero-filled missing bucket (count series only)


@dataclass(frozen=True)
class CleanSummary:
    """What cleaning did to the input: the numbers behind the summary on stderr."""

    rows_read: int
    kind: SeriesKind
    aggregate: Literal["sum", "mean"]  # how duplicate timestamps were merged
    kind_from_values: bool  # True when aggregate was "auto"
    interval_s: int
    out_of_order: int  # rows earlier than a row above them
    duplicate_timestamps: int  # timestamps that had more than one row
    duplicate_rows: int  # rows folded into another row
    gaps: int  # places where at least one interval is missing
    missing_intervals: int
    largest_gap_s: float  # time between the rows around the largest gap (0 if none)
    gaps_filled: int
    zero_filled: int  # buckets added with value 0
    largest_gap_left_s: float
    has_total: bool = False  # a total column: negative and total volume, the live alerter's input

    @property
    def gaps_left(self) -> int:
        return self.gaps - self.gaps_filled

    def lines(self) -> list[str]:
        """Two lines for a person: what the series was taken to be, and what was fixed."""
        if self.kind_from_values and self.has_total:
            why = "auto: a total column, so the values are volumes"
        elif self.kind_from_values:
            why = "auto: " + ("all values are" if self.kind == "count" else "not all values are") \
                + " non-negative integers"
        else:
            why = f"aggregate {self.aggregate}"
        merged = "summed" if self.aggregate == "sum" else "averaged"
        first = f"series: {self.rows_read} rows read; {self.kind} series ({why}), duplicates {merged}"
        fixed = []
        if self.out_of_order:
            fixed.append(f"{_plural(self.out_of_order, 'out-of-order row')} sorted")
        if self.duplicate_timestamps:
            fixed.append(f"{_plural(self.duplicate_timestamps, 'duplicate timestamp')} merged "
                         f"({self.aggregate} of {self.duplicate_rows + self.duplicate_timestamps} rows)")
        if self.gaps_filled:
            fixed.append(f"{_plural(self.gaps_filled, 'gap')} zero-filled "
                         f"({_plural(self.zero_filled, 'bucket')})")
        if self.gaps_left:
            fixed.append(f"{_plural(self.gaps_left, 'gap')} left "
                         f"(largest {_duration(self.largest_gap_left_s)})")
        return [first, "fixed: " + (", ".join(fixed) if fixed else "nothing (in time order, no duplicate timestamps, no gaps)")]


@dataclass(frozen=True)
class CleanSeries:
    rows: list[SeriesRow]  # strictly increasing timestamps
    summary: CleanSummary

    @property
    def kind(self) -> SeriesKind:
        return self.summary.kind

    @property
    def interval_s(self) -> int:
        return self.summary.interval_s

    @property
    def has_total(self) -> bool:
        return self.summary.has_total


@dataclass(frozen=True)
class DetectResult:
    rows: int  # rows written (zero-filled ones included)
    alerts: int
    interval_s: int
    summary: CleanSummary


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _duration(seconds: float) -> str:
    """5m, 3h, 1d 2h: the two largest units are precise enough for a summary."""
    s = max(0, int(round(seconds)))
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        q, s = divmod(s, size)
        if q:
            parts.append(f"{q}{unit}")
    return " ".join(parts[:2]) or "0s"


def parse_timestamp(text: str) -> float:
    """ISO-8601 (naive = UTC, trailing Z allowed) or epoch seconds."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def format_timestamp_like(ts: float, sample: str) -> str:
    """``ts`` in the style of ``sample`` (epoch seconds, or ISO-8601 in UTC), so that added rows
    do not mix formats in one column."""
    s = sample.strip()
    try:
        float(s)
        return str(int(ts)) if float(ts).is_integer() else repr(ts)
    except ValueError:
        pass
    dt = datetime.fromtimestamp(ts, timezone.utc)
    sep = " " if len(s) > 10 and s[10] == " " else "T"
    if s.endswith(("Z", "z")):
        return dt.replace(tzinfo=None).isoformat(sep) + "Z"
    try:
        aware = datetime.fromisoformat(s).tzinfo is not None
    except ValueError:
        aware = True
    return dt.isoformat(sep) if aware else dt.replace(tzinfo=None).isoformat(sep)


def _number(text: str, what: str, row: int) -> float:
    if not text:
        raise SeriesError(f"row {row}: {what} is empty")
    try:
        v = float(text)
    except ValueError:
        raise SeriesError(f"row {row}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise SeriesError(f"row {row}: {what} {text!r} is not a finite number")
    return v


def _format_value(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.12g}"


def read_rows(path: Path) -> list[SeriesRow]:
    """The data rows in file order, each checked; row numbers count the header as row 1."""
    # utf-8-sig: spreadsheet exports often start with a byte-order mark before "timestamp".
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise SeriesError(f"{path}: empty file; need a header row timestamp,value")
        header = [h.strip() for h in reader.fieldnames]
        missing = [c for c in ("timestamp", "value") if c not in header]
        if missing:
            raise SeriesError(f"{path}: missing column(s) {', '.join(missing)}; need timestamp,value")
        reader.fieldnames = header
        rows: list[SeriesRow] = []
        for rec in reader:
            n = reader.line_num  # blank lines are skipped by the reader but still counted here
            ts_raw, v_raw = (rec.get("timestamp") or "").strip(), (rec.get("value") or "").strip()
            if not ts_raw:
                raise SeriesError(f"row {n}: timestamp is empty")
            try:
                ts = parse_timestamp(ts_raw)
            except ValueError:
                raise SeriesError(f"row {n}: timestamp {ts_raw!r} is neither ISO-8601 nor epoch seconds") from None
            if not math.isfinite(ts):
                raise SeriesError(f"row {n}: timestamp {ts_raw!r} is not finite")
            value = _number(v_raw, "value", n)
            total_raw = (rec.get("total") or "").strip() if "total" in header else ""
            total = _number(total_raw, "total", n) if total_raw else None
            if total is not None and (total < 0 or total < value):
                raise SeriesError(f"row {n}: total {total_raw!r} must be >= 0 and >= value {v_raw!r}")
            rows.append(SeriesRow(ts_raw, ts, value, v_raw, total, row=n))
    if not rows:
        raise SeriesError(f"{path}: no data rows (only a header)")
    return rows


def infer_interval(timestamps: list[float]) -> int:
    """The series' regular interval: the median gap (robust to a few missing rows)."""
    if len(timestamps) < 2:
        return 60
    gaps = sorted(b - a for a, b in zip(timestamps, timestamps[1:]))
    return max(1, int(round(gaps[len(gaps) // 2])))


def _merge(group: list[SeriesRow], how: Literal["sum", "mean"]) -> SeriesRow:
    if len(group) == 1:
        return group[0]
    first = group[0]

    def combine(xs: list[float]) -> float:
        s = math.fsum(xs)
        return s if how == "sum" else s / len(xs)

    value = combine([r.value for r in group])
    totals = [r.total for r in group]
    # The same rule for the total keeps total >= value; a partly unknown total is unknown.
    total = combine(totals) if all(t is not None for t in totals) else None  # type: ignore[arg-type]
    return SeriesRow(first.timestamp_raw, first.timestamp, value, _format_value(value), total,
                     row=first.row, merged=len(group))


def clean_series(rows: list[SeriesRow], aggregate: Aggregate = "auto", *, max_fill_s: float = FILL_MAX_S,
                 max_fill_buckets: int = FILL_MAX_BUCKETS) -> CleanSeries:
    """Sort, merge duplicate timestamps and (count series) zero-fill short gaps; see the module doc."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    if not rows:
        raise SeriesError("no data rows")
    has_total = any(r.total is not None for r in rows)
    if has_total and aggregate == "mean":
        raise SeriesError("a total column makes the values volumes (negative and total per bucket), which add "
                          "up: --aggregate mean does not apply; use auto or sum")
    if aggregate == "auto":
        # Volumes with a total need not be integers: the alerter's negative volume sums P(negative).
        kind: SeriesKind = "count" if has_total or all(r.value >= 0 and r.value.is_integer() for r in rows) \
            else "level"
    else:
        kind = "count" if aggregate == "sum" else "level"
    if kind == "count":
        for r in rows:
            if r.value < 0:
                what = "with a total column the values are volumes" if has_total else \
                    "a count series (aggregate sum)"
                raise SeriesError(f"row {r.row}: value {r.value_raw!r} is negative; {what}: they need values >= 0")
    how: Literal["sum", "mean"] = "sum" if kind == "count" else "mean"

    out_of_order, latest = 0, -math.inf
    for r in rows:
        if r.timestamp < latest:
            out_of_order += 1
        latest = max(latest, r.timestamp)
    ordered = sorted(rows, key=lambda r: r.timestamp)  # stable: duplicates keep their file order
    groups = [list(g) for _, g in itertools.groupby(ordered, key=lambda r: r.timestamp)]
    merged = [_merge(g, how) for g in groups]
    interval = infer_interval([r.timestamp for r in merged])

    sample = merged[0].timestamp_raw
    sparse = kind == "count" and any(r.value == 0 for r in merged)
    zero_total = 0.0 if any(r.total is not None for r in merged) else None
    cleaned: list[SeriesRow] = [merged[0]]
    gaps = missing = gaps_filled = zero_filled = 0
    largest = largest_left = 0.0
    for prev, row in zip(merged, merged[1:]):
        span = row.timestamp - prev.timestamp
        lost = int(round(span / interval)) - 1  # missing intervals between the two rows
        if lost >= 1:
            gaps += 1
            missing += lost
            largest = max(largest, span)
            if sparse and span <= max_fill_s and lost <= max_fill_buckets:
                gaps_filled += 1
                zero_filled += lost
                for j in range(1, lost + 1):
                    ts = prev.timestamp + j * interval
                    cleaned.append(SeriesRow(format_timestamp_like(ts, sample), ts, 0.0, "0", zero_total,
                                             filled=True))
            else:
                largest_left = max(largest_left, span)
        cleaned.append(row)

    summary = CleanSummary(
        rows_read=len(rows), kind=kind, aggregate=how, kind_from_values=aggregate == "auto",
        interval_s=interval, out_of_order=out_of_order,
        duplicate_timestamps=sum(len(g) > 1 for g in groups), duplicate_rows=len(rows) - len(groups),
        gaps=gaps, missing_intervals=missing, largest_gap_s=largest, gaps_filled=gaps_filled,
        zero_filled=zero_filled, largest_gap_left_s=largest_left, has_total=has_total,
    )
    return CleanSeries(cleaned, summary)


def read_series(path: Path, aggregate: Aggregate = "auto", *, max_fill_s: float = FILL_MAX_S,
                max_fill_buckets: int = FILL_MAX_BUCKETS) -> CleanSeries:
    """Read, check and clean one series CSV (timestamp,value and optionally total)."""
    return clean_series(read_rows(path), aggregate, max_fill_s=max_fill_s, max_fill_buckets=max_fill_buckets)


SeriesConfig = ShapeConfig | DetectorConfig


def detector_config(series: CleanSeries, alerts: AlertSettings | None = None,
                    shape: ShapeConfig | None = None) -> SeriesConfig:
    """What ``detect`` runs on ``series``: with a total column the live alerter's volume detector
    with the ``alerts`` settings at the series' interval, otherwise the shape detector."""
    if series.has_total:
        return DetectorConfig.from_settings(alerts or AlertSettings(), bucket_s=series.interval_s)
    return (shape or ShapeConfig()).with_(series_kind=series.kind)


def detect_series(rows: list[SeriesRow], config: SeriesConfig
                  ) -> Iterator[tuple[SeriesRow, ShapeStep | DetectorStep]]:
    """One detector step per row, in the given (time) order."""
    det = SpikeDetector(config) if isinstance(config, DetectorConfig) else ShapeDetector(config)
    for row in rows:
        try:
            step = det.update(row.timestamp, row.value, row.total)
        except ValueError as e:
            where = f"row {row.row}" if row.row is not None else f"filled bucket {row.timestamp_raw}"
            raise SeriesError(f"{where}: the detector rejected value {row.value_raw!r}: {e}") from None
        yield row, step


def run_detect(series: CleanSeries, output_path: Path, config: SeriesConfig) -> DetectResult:
    """Write timestamp,value,score,alert,severity,filled: one row per cleaned row, in time order."""
    alerts = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(OUTPUT_COLUMNS)
        for row, step in detect_series(series.rows, config):
            alerts += step.alert
            w.writerow([row.timestamp_raw, row.value_raw, f"{step.score:.4f}", int(step.alert),
                        step.severity or "", int(row.filled)])
    return DetectResult(len(series.rows), alerts, series.interval_s, series.summary)
