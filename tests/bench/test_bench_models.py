"""bench.bench_models: the load gate, the physics check, the statistics, and a quick real run."""
from __future__ import annotations

import json
import os

import pytest

from bench import bench_models as bm
from bench.machine_load import MAX_LOAD_PER_CORE, CpuMeter, check_load

BUSY = lambda: (99.0, 99.0, 99.0)  # noqa: E731  above the limit on any machine
IDLE = lambda: (0.0, 0.0, 0.0)  # noqa: E731
THREAD_ENV = ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_NUM_THREADS")


def cell(*runs: float) -> dict:
    return bm.summarize(list(runs))


# -- statistics -------------------------------------------------------------------------------------

def test_summarize_median_and_spread():
    s = bm.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["min"], s["max"], s["q1"], s["q3"], s["iqr"], s["n"]) == (3, 1, 5, 2, 4, 2, 5)
    assert s["runs"] == [5.0, 1.0, 3.0, 2.0, 4.0]  # in measurement order, for drift
    one = bm.summarize([7.0])
    assert one["median"] == one["min"] == one["max"] == 7.0 and one["iqr"] == 0
    with pytest.raises(ValueError):
        bm.summarize([])


def test_padding_overhead():
    assert bm.padding_overhead([10, 20, 30, 40], batch=1, cap=32) == 1.0
    # one call of 4, sorted, two passes of 2: [10, 20] -> 2 x 20, [30, 40] -> 2 x 40 = 120 / 100
    assert bm.padding_overhead([40, 10, 30, 20], batch=4, cap=2) == 1.2
    # two calls of 2 in input order: [40, 10] -> 80, [30, 20] -> 60 = 140 / 100
    assert bm.padding_overhead([40, 10, 30, 20], batch=2, cap=32) == 1.4
    # a token budget of 60: [10, 20] -> 40, then [30] and [40] alone (2 x 30 or 2 x 40 would exceed it)
    assert bm.padding_overhead([40, 10, 30, 20], batch=4, cap=32, max_tokens=60) == 1.1


def test_disturbed_pass_is_timed_again(monkeypatch):
    tries = iter([(10.0, 1.5), (50.0, 0.1), (40.0, 0.0)])  # (texts/s, other processes' cores)
    monkeypatch.setattr(bm, "timed_pass", lambda fn, texts, b: next(tries))
    out = bm.measure(lambda batch: None, ["a"] * 8, (1,), repeats=2, label="x", log=lambda s: None, other_limit=0.5)
    c = out["1"]
    assert c["runs"] == [50.0, 40.0] and c["disturbed"] == 1 and c["still_disturbed"] == 0


def test_a_pass_disturbed_every_time_is_kept_and_counted(monkeypatch):
    monkeypatch.setattr(bm, "timed_pass", lambda fn, texts, b: (5.0, 2.0))
    out = bm.measure(lambda batch: None, ["a"] * 8, (1,), repeats=1, label="x", log=lambda s: None,
                     other_limit=0.5, retries=2)
    assert out["1"]["runs"] == [5.0] and out["1"]["disturbed"] == 2 and out["1"]["still_disturbed"] == 1


# -- physics check ----------------------------------------------------------------------------------

def test_physics_flags_batch1_faster_than_batch32():
    runs = {"onnx-int8": {"1": cell(165, 160, 170), "8": cell(120, 127, 130), "32": cell(64, 60, 66),
                          "128": cell(87, 85, 90)}}
    issues, notes = bm.physics_check(runs)
    assert len(issues) == 2 and not notes
    assert "onnx-int8" in issues[0] and "batch 32" in issues[0] and "batch 128" in issues[1]


def test_physics_within_spread_is_not_flagged():
    runs = {"onnx": {"1": cell(100, 80, 120), "32": cell(95, 70, 140)}}
    assert bm.physics_check(runs) == ([], [])
    runs = {"onnx": {"1": cell(80, 81, 82), "32": cell(200, 210, 190)}}  # the expected shape
    assert bm.physics_check(runs) == ([], [])


def test_physics_one_repeat_has_no_spread():
    issues, _ = bm.physics_check({"torch": {"1": cell(50), "64": cell(49)}})
    assert len(issues) == 1


def test_physics_padding_explains_a_batch1_lead():
    # 1.8x the tokens per text at batch 32: 70 texts/s there is 126 rows' worth of work per second.
    runs = {"onnx-int8": {"1": cell(100, 99, 101), "32": cell(70, 69, 71)}}
    issues, notes = bm.physics_check(runs, padding={"1": 1.0, "32": 1.8})
    assert issues == [] and len(notes) == 1 and "1.80x padding" in notes[0]
    # ... but not a lead larger than the padding accounts for
    runs = {"onnx-int8": {"1": cell(165, 164, 166), "32": cell(64, 63, 65)}}
    issues, _ = bm.physics_check(runs, padding={"1": 1.0, "32": 1.8})
    assert len(issues) == 1


# -- load gate --------------------------------------------------------------------------------------

def test_check_load_threshold():
    assert check_load(4, IDLE).busy is False
    assert check_load(4, lambda: (4 * MAX_LOAD_PER_CORE, 0, 0)).busy is False  # at the limit is allowed
    busy = check_load(4, lambda: (2.5, 1.0, 0.5))
    assert busy.busy and busy.limit == 2.0
    line = busy.refusal("bench_models", "--allow-busy")
    assert "\n" not in line and "2.50" in line and "--allow-busy" in line


def test_busy_machine_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys):
    def must_not_run(*a, **k):
        raise AssertionError("a refused run must not touch threads or models")

    monkeypatch.setattr(bm, "pin_thread_env", must_not_run)
    out, doc = tmp_path / "r.json", tmp_path / "models.md"
    doc.write_text(f"{bm.MARK_START}\nold\n{bm.MARK_END}\n")
    rc = bm.main(["--quick", "--backends", "onnx-int8", "--out", str(out), "--docs", str(doc)], loadavg=BUSY)
    assert rc == bm.EXIT_BUSY
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to run" in err and "99.00" in err
    assert not out.exists() and "old" in doc.read_text()


def test_docs_only_for_clean_or_allowed_runs():
    assert bm.docs_allowed(flagged=False, allow_busy=False, no_docs=False)
    assert not bm.docs_allowed(flagged=True, allow_busy=False, no_docs=False)
    assert bm.docs_allowed(flagged=True, allow_busy=True, no_docs=False)
    assert not bm.docs_allowed(flagged=False, allow_busy=True, no_docs=True)


def test_cpu_meter_measures_others():
    other = CpuMeter().start().stop()
    assert other is None or other >= 0.0


def test_markdown_says_busy_and_inconsistent():
    res = {"machine": {"cpu": "x", "cores": 2, "host": "h"}, "threads": 2, "date": "2025-01-01T00:00:00",
           "load": {"loadavg_at_start": [3.0, 2.0, 1.0]}, "batch_sizes": [1, 32], "repeats": 3,
           "max_rows_per_pass": 32, "command": "c", "texts": {"source": "s"}, "busy": True,
           "busy_reasons": ["load 3.0 > 1.0."], "inconsistent": True, "inconsistencies": ["onnx: batch 1 ..."],
           "backends": {"onnx": {"1": cell(3, 2, 4), "32": cell(1, 1, 1)}}}
    table = bm.markdown(res)
    assert "**Busy machine" in table and "**Inconsistent run" in table and "| onnx | 3 (2–4) | 1 (1–1) |" in table


# -- quick real run ---------------------------------------------------------------------------------

def test_quick_run_onnx_int8(tmp_path, monkeypatch, capsys):
    """The whole path on the int8 backend alone, on a (faked) busy machine with --allow-busy: results
    and the docs table go to temporary files, flagged busy; bench/results is left alone."""
    for k in THREAD_ENV:  # main() sets these for its pools; recorded here so that teardown restores them
        monkeypatch.setenv(k, os.environ.get(k, ""))
    default = bm.default_out(bm.machine_info(1)["host"])
    before = default.stat().st_mtime_ns if default.exists() else None
    out, doc = tmp_path / "r.json", tmp_path / "models.md"
    doc.write_text(f"# Models\n\n{bm.MARK_START}\nold table\n{bm.MARK_END}\n\nprose after\n")

    # One thread: gentler on a shared machine, and the test checks the path, not the speed.
    rc = bm.main(["--quick", "--backends", "onnx-int8", "--allow-busy", "--threads", "1",
                  "--out", str(out), "--docs", str(doc)], loadavg=BUSY)

    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["busy"] is True and res["load"]["loadavg_at_start"] == [99.0, 99.0, 99.0]
    assert res["threads"] == 1 and res["repeats"] == 1 and res["machine"]["cores"] >= 1
    assert "loadavg_at_end" in res["load"] and isinstance(res["inconsistent"], bool)
    row = res["backends"]["onnx-int8"]
    assert set(row) == {str(b) for b in bm.BATCH_SIZES}
    assert all(c["median"] > 0 and c["n"] == 1 for c in row.values())
    assert set(res["padding_overhead"]) == set(row) and res["padding_overhead"]["1"] == 1.0
    assert "vs_baseline" not in res  # no baseline in this run, so no ratios
    text = doc.read_text()
    assert "old table" not in text and "**Busy machine" in text and "| onnx-int8 |" in text
    assert text.startswith("# Models\n") and text.endswith("\n\nprose after\n")
    assert (default.stat().st_mtime_ns if default.exists() else None) == before
