"""`marketpulse detect`: find anomalies in a CSV series; with a total column, backtest the live alerter's detector."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from consumers.alerting.buckets import BucketStats
from consumers.alerting.config import DetectorConfig
from consumers.alerting.monitor import SpikeMonitor
from marketpulse.cli import app
from marketpulse.settings import AlertSettings

runner = CliRunner()


def write_series(path: Path, timestamps, values, header=("timestamp", "value")) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(zip(timestamps, values))
    return path


def read_output(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# The detector scores only after about 150 buckets (100 of history, then 50 scores to calibrate
# on), and its first calibrated scores may still misfire; the burst comes after a long calm stretch.
N, SPIKE = 500, 400


def spiky_values(n=N, seed=0):
    """Events per bucket: Poisson(10) noise, never 0, with a five-bucket burst of 80 at SPIKE.

    Seed 0's calm stretch holds nothing the detector alerts on, so the burst is the only alert."""
    values = np.random.default_rng(seed).poisson(10, n)
    values[SPIKE:SPIKE + 5] = 80
    return [int(v) for v in values]


def sparse_values(n=300, seed=0):
    """Mentions per minute: Poisson(1.5), so many minutes report 0 (a sparse count series)."""
    return [int(v) for v in np.random.default_rng(seed).poisson(1.5, n)]


def alert_rows(rows: list[dict]) -> list[int]:
    return [i for i, r in enumerate(rows) if r["alert"] == "1"]


def test_one_output_row_per_input_row_with_a_0_1_alert_column(tmp_path):
    start = datetime(2024, 1, 9, 14, 0, tzinfo=timezone.utc)
    ts = [(start + timedelta(minutes=5 * i)).isoformat() for i in range(N)]
    src = write_series(tmp_path / "s.csv", ts, spiky_values())
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert list(rows[0]) == ["timestamp", "value", "score", "alert", "severity", "filled"]
    assert len(rows) == N and [r["timestamp"] for r in rows] == ts
    assert {r["alert"] for r in rows} <= {"0", "1"}
    assert alert_rows(rows) == [SPIKE]
    assert "interval 300s" in res.output


def test_epoch_second_timestamps_are_accepted(tmp_path):
    src = write_series(tmp_path / "s.csv", [1_704_808_800 + 60 * i for i in range(N)], spiky_values())
    out = tmp_path / "a.csv"
    assert runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)]).exit_code == 0
    assert sum(r["alert"] == "1" for r in read_output(out)) == 1


@pytest.mark.parametrize("override", [["--threshold", "50"], ["--min-volume", "1000"]])
def test_overrides_change_the_outcome(tmp_path, override):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(N)], spiky_values())
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), *override])
    assert res.exit_code == 0, res.output
    assert all(r["alert"] == "0" for r in read_output(out))


def test_a_broken_config_file_is_refused(tmp_path):
    src = write_series(tmp_path / "s.csv", [0, 60], [1, 2])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("alerts:\n  threshold: -1\n")
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(tmp_path / "a.csv"), "--config", str(cfg)])
    assert res.exit_code != 0
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize(
    ("rows", "header", "args", "message"),
    [
        ([("2024-01-09T14:00:00Z", "3")], ("time", "value"), [], "missing column(s) timestamp"),
        ([(0, "3"), (60, "x")], ("timestamp", "value"), [], "row 3: value 'x' is not a number"),
        ([(0, "3"), (60, "nan")], ("timestamp", "value"), [], "row 3: value 'nan' is not a finite number"),
        ([(0, "3"), (60, "inf")], ("timestamp", "value"), [], "row 3: value 'inf' is not a finite number"),
        ([(0, "3"), ("yesterday", "4")], ("timestamp", "value"), [], "row 3: timestamp 'yesterday'"),
        ([(0, "3"), (60, "-2")], ("timestamp", "value"), ["--aggregate", "sum"], "row 3: value '-2' is negative"),
        ([], ("timestamp", "value"), [], "no data rows (only a header)"),
    ],
)
def test_bad_input_fails_with_a_clear_message(tmp_path, rows, header, args, message):
    src = write_series(tmp_path / "bad.csv", [r[0] for r in rows], [r[1] for r in rows], header=header)
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(tmp_path / "a.csv"), *args])
    assert res.exit_code == 2
    assert message in res.stderr


def test_an_unknown_aggregate_is_refused(tmp_path):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(10)], sparse_values(10))
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(tmp_path / "a.csv"), "--aggregate", "median"])
    assert res.exit_code == 2
    assert "--aggregate" in res.output


# -- real exports: unsorted, duplicated, gappy -----------------------------------------------------

def test_a_shuffled_export_with_counts_split_over_duplicate_rows_gives_the_tidy_result(tmp_path):
    ts, vals = [60 * i for i in range(N)], spiky_values()
    tidy_out = tmp_path / "tidy_out.csv"
    runner.invoke(app, ["detect", "-i", str(write_series(tmp_path / "tidy.csv", ts, vals)), "-o", str(tidy_out)])
    # Every bucket's count split over two rows (sum = the count), then the rows shuffled.
    rows = [(t, v // 2) for t, v in zip(ts, vals)] + [(t, v - v // 2) for t, v in zip(ts, vals)]
    order = np.random.default_rng(1).permutation(len(rows))
    src = write_series(tmp_path / "messy.csv", [rows[i][0] for i in order], [rows[i][1] for i in order])
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    got = read_output(out)
    assert [int(r["timestamp"]) for r in got] == ts
    assert [int(r["value"]) for r in got] == vals
    assert got == read_output(tidy_out)
    assert f"{N} duplicate timestamps merged (sum of {2 * N} rows)" in res.stderr


def test_duplicate_timestamps_are_averaged_with_aggregate_mean(tmp_path):
    ts = [60 * i for i in range(N)] + [60]
    vals = spiky_values() + [0]
    src = write_series(tmp_path / "s.csv", ts, vals)
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--aggregate", "mean"])
    assert res.exit_code == 0, res.output
    assert read_output(out)[1]["value"] == f"{vals[1] / 2:g}"
    assert "level series (aggregate mean), duplicates averaged" in res.stderr


def test_summary_of_the_fixes_goes_to_stderr_and_the_result_line_to_stdout(tmp_path):
    ts = [60 * i for i in range(N)]
    ts[10], ts[11] = ts[11], ts[10]
    src = write_series(tmp_path / "s.csv", ts, spiky_values())
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        f"series: {N} rows read; count series (auto: all values are non-negative integers), "
        "duplicates summed",
        "fixed: 1 out-of-order row sorted",
    ]
    assert res.stdout == f"{N} rows, interval 60s, 1 alert(s) -> {out} (shape detector)\n"


def test_missing_buckets_of_a_sparse_count_series_are_written_as_zero_and_marked_filled(tmp_path):
    start = datetime(2024, 1, 9, 14, 0, tzinfo=timezone.utc)
    keep = [i for i in range(300) if i not in (50, 51, 52)]
    vals = sparse_values()
    src = write_series(tmp_path / "s.csv", [(start + timedelta(minutes=i)).isoformat() for i in keep],
                       [vals[i] for i in keep])
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert len(rows) == 300
    filled = [(i, r["timestamp"], r["value"]) for i, r in enumerate(rows) if r["filled"] == "1"]
    assert filled == [(i, (start + timedelta(minutes=i)).isoformat(), "0") for i in (50, 51, 52)]
    assert "1 gap zero-filled (3 buckets)" in res.stderr
    assert res.stdout.startswith("300 rows, interval 60s")


def test_gaps_in_a_count_series_that_never_reports_zero_stay_gaps(tmp_path):
    # Poisson(10) counts are never 0 here, so the three missing minutes are missing data. Filled
    # with zeros they would look like a sudden drop and alert (and the cooldown after that false
    # alert could hide a real one).
    keep = [i for i in range(N) if i not in (300, 301, 302)]
    vals = spiky_values()
    src = write_series(tmp_path / "s.csv", [60 * i for i in keep], [vals[i] for i in keep])
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert [int(r["timestamp"]) for r in rows] == [60 * i for i in keep]
    assert {r["filled"] for r in rows} == {"0"}
    assert [int(rows[i]["timestamp"]) for i in alert_rows(rows)] == [60 * SPIKE]
    assert "count series" in res.stderr and "1 gap left (largest 4m)" in res.stderr
    assert "zero-filled" not in res.stderr
    assert res.stdout.startswith(f"{N - 3} rows, interval 60s, 1 alert(s)")


def test_gaps_in_a_level_series_stay_gaps(tmp_path):
    # CPU utilisation in percent: a level series; the missing minutes are unknown, not 0 %.
    cpu = np.round(40 + np.random.default_rng(2).normal(0, 2, 300), 3)
    keep = [i for i in range(300) if not 100 <= i < 110]
    src = write_series(tmp_path / "s.csv", [60 * i for i in keep], [float(cpu[i]) for i in keep])
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert [int(r["timestamp"]) for r in rows] == [60 * i for i in keep]
    assert {r["filled"] for r in rows} == {"0"}
    assert "level series" in res.stderr and "1 gap left (largest 11m)" in res.stderr


def test_a_level_series_with_negative_values_alerts_on_a_level_shift(tmp_path):
    # Outdoor temperatures every 15 minutes, swinging daily between about -4 and 4 degrees for
    # four days; then the sensor reads about 15 degrees warmer (moved next to a heater).
    n, shift = 480, 420
    i = np.arange(n)
    temps = 3 * np.sin(2 * np.pi * i / 96) + np.random.default_rng(1).normal(0, 0.5, n)
    temps[shift:] += 15
    text = [f"{t:.1f}" for t in temps]
    assert min(temps[:shift]) < -3 < 3 < max(temps[:shift])
    src = write_series(tmp_path / "s.csv", [1_704_808_800 + 900 * k for k in range(n)], text)
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "level series (auto: not all values are non-negative integers), duplicates averaged" in res.stderr
    rows = read_output(out)
    assert [r["value"] for r in rows] == text  # negative readings pass through as written
    assert alert_rows(rows) == [shift]
    assert rows[shift]["severity"] == "critical"
    assert res.stdout.startswith(f"{n} rows, interval 900s, 1 alert(s)")


# -- the output file -------------------------------------------------------------------------------

def test_output_lines_end_with_a_bare_newline(tmp_path):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(10)], sparse_values(10))
    out = tmp_path / "a.csv"
    assert runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)]).exit_code == 0
    data = out.read_bytes()
    assert b"\r" not in data
    assert data.count(b"\n") == 11 and data.endswith(b"\n")


def test_severity_column_names_the_open_incidents_level(tmp_path):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(N)], spiky_values())
    out = tmp_path / "a.csv"
    assert runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)]).exit_code == 0
    rows = read_output(out)
    assert {r["severity"] for r in rows} <= {"", "warning", "critical"}
    assert all(r["severity"] == "" for r in rows[:SPIKE])  # no incident before the spike
    assert rows[SPIKE]["alert"] == "1" and rows[SPIKE]["severity"] in ("warning", "critical")
    open_rows = [i for i, r in enumerate(rows) if r["severity"]]
    assert open_rows == list(range(SPIKE, SPIKE + len(open_rows)))  # one incident, while it is open


def test_missing_input_file_is_an_error(tmp_path):
    res = runner.invoke(app, ["detect", "-i", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "a.csv")])
    assert res.exit_code != 0
    assert "does not exist" in res.output


# -- a total column: the live alerter's own detector ------------------------------------------------

class RecordingMonitor(SpikeMonitor):
    """The live alerter's monitor, also writing down one key's (negative, total) per closed bucket:
    what an export of its buckets holds."""

    def __init__(self, config: DetectorConfig, key: str):
        super().__init__(config)
        self.key, self.rows = key, []

    def _evaluate(self, bucket):
        stats = bucket.stats.get(self.key)
        if stats is not None or self.key in self.detectors:
            stats = stats or BucketStats()
            self.rows.append((int(bucket.start), stats.negative, stats.total))
        return super()._evaluate(bucket)


def test_with_a_total_column_an_export_of_the_alerters_buckets_gives_the_alerters_alerts(tmp_path, make_event):
    # Six hours of AAPL chatter, 30 % of it negative, with two incidents of strongly negative headlines.
    rng = np.random.default_rng(3)
    events = []
    for m in range(360):
        for j in range(int(rng.poisson(6)) + 1):
            p = 0.9 if rng.random() < 0.3 else 0.05
            events.append(make_event(f"m{m}-{j}", m * 60 + rng.uniform(0, 59), p_neg=p, tickers=[("AAPL", 1.0)]))
        if m in (150, 290):
            events += [make_event(f"inc{m}-{j}", m * 60 + 1 + j, p_neg=0.97, tickers=[("AAPL", 1.0)],
                                  text=f"AAPL recall {m} {j}") for j in range(25)]
    monitor = RecordingMonitor(DetectorConfig.from_settings(AlertSettings()), "ticker:AAPL")
    live = []
    for e in events:
        monitor.observe(e)
        live += monitor.advance()
    opened = [int(a.window_start.timestamp()) for a in live if a.key == "ticker:AAPL" and a.status == "opened"]
    assert len(opened) == 2  # both incidents, nothing else: the comparison below is not vacuous

    ts = [t for t, _, _ in monitor.rows]
    assert ts == list(range(ts[0], ts[-1] + 60, 60))  # every bucket, the empty ones too
    src = tmp_path / "export.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "total"])
        w.writerows((t, repr(neg), repr(total)) for t, neg, total in monitor.rows)
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "count series (auto: a total column, so the values are volumes)" in res.stderr
    assert res.stdout.rstrip().endswith("(volume detector (alerts settings))")
    assert [int(r["timestamp"]) for r in read_output(out) if r["alert"] == "1"] == opened

    # The alerts settings are the alerter's: a stricter threshold in --config holds for detect too.
    strict = tmp_path / "strict.yaml"
    strict.write_text("alerts:\n  threshold: 40\n  critical_threshold: 40\n")
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--config", str(strict)])
    assert res.exit_code == 0, res.output
    assert all(r["alert"] == "0" for r in read_output(out))
