"""`marketpulse detect`: backtest the live detector on a CSV series."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from marketpulse.cli import app

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


def spiky_values(n=300, seed=0):
    values = np.random.default_rng(seed).poisson(10, n)
    values[200:205] = 80
    return [int(v) for v in values]


def test_one_output_row_per_input_row_with_a_0_1_alert_column(tmp_path):
    start = datetime(2024, 1, 9, 14, 0, tzinfo=timezone.utc)
    ts = [(start + timedelta(minutes=5 * i)).isoformat() for i in range(300)]
    src = write_series(tmp_path / "s.csv", ts, spiky_values())
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    rows = read_output(out)
    assert list(rows[0]) == ["timestamp", "value", "score", "alert"]
    assert len(rows) == 300 and [r["timestamp"] for r in rows] == ts
    assert {r["alert"] for r in rows} <= {"0", "1"}
    assert [i for i, r in enumerate(rows) if r["alert"] == "1"] == [200]
    assert "interval 300s" in res.output


def test_epoch_second_timestamps_are_accepted(tmp_path):
    src = write_series(tmp_path / "s.csv", [1_704_808_800 + 60 * i for i in range(300)], spiky_values())
    out = tmp_path / "a.csv"
    assert runner.invoke(app, ["detect", "-i", str(src), "-o", str(out)]).exit_code == 0
    assert sum(r["alert"] == "1" for r in read_output(out)) == 1


def test_overrides_change_the_outcome(tmp_path):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(300)], spiky_values())
    out = tmp_path / "a.csv"
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--threshold", "50"])
    assert res.exit_code == 0, res.output
    assert all(r["alert"] == "0" for r in read_output(out))


def test_config_file_settings_are_used(tmp_path):
    src = write_series(tmp_path / "s.csv", [60 * i for i in range(300)], spiky_values())
    cfg = tmp_path / "c.yaml"
    cfg.write_text("alerts:\n  min_volume: 1000\n")
    out = tmp_path / "a.csv"
    assert runner.invoke(app, ["detect", "-i", str(src), "-o", str(out), "--config", str(cfg)]).exit_code == 0
    assert all(r["alert"] == "0" for r in read_output(out))


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([("2024-01-09T14:00:00Z", "3")], ("time", "value"), "missing column(s) timestamp"),
        ([(0, "3"), (60, "x")], ("timestamp", "value"), "row 3: value 'x' is not a number"),
        ([(0, "3"), ("yesterday", "4")], ("timestamp", "value"), "row 3: timestamp 'yesterday'"),
        ([(0, "3"), (60, "-2")], ("timestamp", "value"), "row 3: value '-2' must be"),
        ([(60, "3"), (0, "4")], ("timestamp", "value"), "row 3: timestamp '0' is not after"),
        ([], ("timestamp", "value"), "no data rows"),
    ],
)
def test_bad_input_fails_with_a_clear_message(tmp_path, rows, header, message):
    src = write_series(tmp_path / "bad.csv", [r[0] for r in rows], [r[1] for r in rows], header=header)
    res = runner.invoke(app, ["detect", "-i", str(src), "-o", str(tmp_path / "a.csv")])
    assert res.exit_code != 0
    assert message in res.output


def test_missing_input_file_is_an_error(tmp_path):
    res = runner.invoke(app, ["detect", "-i", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "a.csv")])
    assert res.exit_code != 0
    assert "does not exist" in res.output
