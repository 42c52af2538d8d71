"""Backtest of one count series from CSV: what ``marketpulse detect`` runs."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import SpikeDetector


class SeriesError(ValueError):
    """A problem with the input CSV, with the row number (header = row 1) where known."""


@dataclass(frozen=True)
class SeriesRow:
    timestamp_raw: str
    timestamp: float
    value: float
    value_raw: str
    total: float | None


def parse_timestamp(text: str) -> float:
    """ISO-8601 (naive = UTC, trailing Z allowed) or epoch seconds."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _number(text: str, what: str, row: int) -> float:
    try:
        v = float(text)
    except ValueError:
        raise SeriesError(f"row {row}: {what} {text!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise SeriesError(f"row {row}: {what} {text!r} must be a finite number >= 0")
    return v


def read_series(path: Path) -> list[SeriesRow]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("timestamp", "value") if c not in header]
        if missing:
            raise SeriesError(f"{path}: missing column(s) {', '.join(missing)}; need timestamp,value")
        reader.fieldnames = header
        rows: list[SeriesRow] = []
        for n, rec in enumerate(reader, start=2):
            ts_raw, v_raw = (rec.get("timestamp") or "").strip(), (rec.get("value") or "").strip()
            try:
                ts = parse_timestamp(ts_raw)
            except ValueError:
                raise SeriesError(f"row {n}: timestamp {ts_raw!r} is neither ISO-8601 nor epoch seconds") from None
            if not math.isfinite(ts):
                raise SeriesError(f"row {n}: timestamp {ts_raw!r} is not finite")
            if rows and ts <= rows[-1].timestamp:
                raise SeriesError(f"row {n}: timestamp {ts_raw!r} is not after the previous row's")
            total_raw = (rec.get("total") or "").strip() if "total" in header else ""
            total = _number(total_raw, "total", n) if total_raw else None
            rows.append(SeriesRow(ts_raw, ts, _number(v_raw, "value", n), v_raw, total))
    if not rows:
        raise SeriesError(f"{path}: no data rows")
    return rows


def infer_interval(timestamps: list[float]) -> int:
    """The series' regular interval: the median gap (robust to a few missing rows)."""
    if len(timestamps) < 2:
        return 60
    gaps = sorted(b - a for a, b in zip(timestamps, timestamps[1:]))
    return max(1, int(round(gaps[len(gaps) // 2])))


def detect_series(rows: list[SeriesRow], config: DetectorConfig) -> Iterator[tuple[SeriesRow, float, bool]]:
    det = SpikeDetector(config)
    for row in rows:
        step = det.update(row.timestamp, row.value, row.total)
        yield row, step.score, step.alert


def run_detect(input_path: Path, output_path: Path, config: DetectorConfig) -> tuple[int, int, int]:
    """Write timestamp,value,score,alert (one row per input row). Returns (rows, alerts, interval_s)."""
    rows = read_series(input_path)
    interval = infer_interval([r.timestamp for r in rows])
    config = config.with_(bucket_s=interval)
    alerts = 0
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with output_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "score", "alert"])
        for row, score, alert in detect_series(rows, config):
            alerts += alert
            w.writerow([row.timestamp_raw, row.value_raw, f"{score:.4f}", int(alert)])
    return len(rows), alerts, interval
