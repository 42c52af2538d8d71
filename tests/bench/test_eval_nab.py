"""The real-series evaluation runs `marketpulse detect`'s path on a NAB-layout corpus and scores it."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from bench.eval_nab import evaluate, main
from consumers.alerting.shape_detector import ShapeConfig


def write_corpus(root, n=900, anomaly_at=700):
    """One level series with a clear level shift inside its labelled window, one calm series."""
    start = datetime(2024, 1, 1)
    stamp = lambda i: (start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")
    rng = np.random.default_rng(4)
    shifted = 50 + rng.normal(0, 1, n)
    shifted[anomaly_at:] += 20
    calm = 50 + rng.normal(0, 1, n)
    (root / "cat").mkdir(parents=True)
    for name, values in (("shift.csv", shifted), ("calm.csv", calm)):
        rows = ["timestamp,value"] + [f"{stamp(i)},{v:.3f}" for i, v in enumerate(values)]
        rows.insert(300, rows[299])  # a duplicated row, as real exports have
        (root / "cat" / name).write_text("\n".join(rows) + "\n")
    labels = {"cat/shift.csv": [[stamp(anomaly_at - 40) + ".000000", stamp(anomaly_at + 40) + ".000000"]],
              "cat/calm.csv": []}
    (root / "labels_windows.json").write_text(json.dumps(labels))


def test_a_clear_level_shift_in_its_window_is_detected_and_scores_well(tmp_path):
    write_corpus(tmp_path)
    res = evaluate(tmp_path, ShapeConfig(), jobs=1)
    assert res["windows"] == 1 and res["detected"] == 1
    assert res["score"] > 50  # detected inside the window, few or no false alerts
    assert {f["file"]: f["kind"] for f in res["files"]} == {"cat/calm.csv": "level", "cat/shift.csv": "level"}
    assert res["buckets_per_s_per_key"] > 0


def test_the_live_volume_detector_is_scored_on_the_same_files(tmp_path):
    write_corpus(tmp_path)
    res = evaluate(tmp_path, None, jobs=1)
    assert res["windows"] == 1 and "live volume detector" in res["config"]


def test_replaying_the_recorded_scores_at_a_threshold_equals_a_fresh_run_there(tmp_path):
    write_corpus(tmp_path)
    res = evaluate(tmp_path, ShapeConfig(), jobs=1)
    by_threshold = {s["threshold"]: s for s in res["threshold_sensitivity"]}
    assert by_threshold[ShapeConfig().threshold]["score"] == res["score"]
    fresh = evaluate(tmp_path, ShapeConfig(threshold=4.0), jobs=1)
    assert (by_threshold[4.0]["score"], by_threshold[4.0]["false_alerts"]) == (fresh["score"], fresh["false_alerts"])


def test_a_busy_machine_is_refused_before_anything_runs(tmp_path, capsys):
    busy = lambda: (64.0, 64.0, 64.0)  # noqa: E731
    with pytest.raises(SystemExit) as exit_:
        main(["--corpus", str(tmp_path / "no-such-corpus"), "--no-docs"], loadavg=busy)
    assert exit_.value.code == 2
    assert "refusing to run" in capsys.readouterr().err
