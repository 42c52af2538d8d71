"""bench.bench_explain: the agreement measure, the verdict, the load gate and a small real run."""
from __future__ import annotations

import json
import os

import pytest

from bench import bench_explain as be

BUSY = lambda: (99.0, 99.0, 99.0)  # noqa: E731
THREAD_ENV = ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_NUM_THREADS")


def ranked(*positions: int):
    return tuple((p, 1.0 / (k + 1)) for k, p in enumerate(positions))


def test_agreement_by_word_position():
    ref = [ranked(3, 1, 4), ranked(0, 2, 5), ranked(7)]
    cand = [ranked(3, 4, 9), ranked(2, 0, 5), ranked(7)]
    a = be.agreement(ref, cand)
    assert a["top1"] == round(2 / 3, 3)  # texts 1 and 3 share the best word
    # overlaps 2/3, 3/3 and 1/1 (both lists one word long: they agree fully)
    assert a["top3_overlap"] == round((2 / 3 + 1 + 1) / 3, 3)
    assert a["top3_overlap_strict"] == round((2 / 3 + 1 + 1 / 3) / 3, 3)
    assert be.agreement([()], [()])["top3_overlap"] == 1.0  # neither explains: no disagreement
    with pytest.raises(ValueError):
        be.agreement(ref, cand[:2])


def speed(median, lo, hi):
    return {"median": median, "min": lo, "max": hi}


def test_verdict_needs_the_overlap_and_a_speedup_beyond_the_spread():
    methods = {
        be.REFERENCE: {"speed": speed(10, 9, 11), "agreement": {"top3_overlap": 1.0}},
        "fast but different": {"speed": speed(20, 19, 21), "agreement": {"top3_overlap": 0.7}},
        "agrees, within noise": {"speed": speed(11.5, 10, 13), "agreement": {"top3_overlap": 0.9}},
        "agrees and faster": {"speed": speed(15, 14, 16), "agreement": {"top3_overlap": 0.82}},
        be.NOISE: {"agreement": {"top3_overlap": 0.85}},
    }
    v = be.verdict(methods)
    assert v["adopt"] == "agrees and faster"
    assert v["candidates"]["fast but different"] == {"agrees": False, "faster": True, "qualifies": False}
    assert v["candidates"]["agrees, within noise"]["faster"] is False
    del methods["agrees and faster"]
    assert be.verdict(methods)["adopt"] is None


def test_busy_machine_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys):
    def must_not_run(*a, **k):
        raise AssertionError("a refused run must not touch threads or models")

    monkeypatch.setattr(be, "pin_thread_env", must_not_run)
    out = tmp_path / "r.json"
    assert be.main(["--out", str(out)], loadavg=BUSY) == be.EXIT_BUSY
    assert "refusing to run" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("args", [["--screen", "x"], ["--screen", "0"], ["--texts", "0"], ["--chunk", "0"]])
def test_bad_arguments_are_refused(args):
    with pytest.raises(SystemExit):
        be.parse_args(args)


def test_small_run_on_int8(tmp_path, monkeypatch, capsys):
    """The whole path on a few dev texts, one thread, one repeat, flagged busy; bench/results is left
    alone."""
    from marketpulse.settings import Settings

    if not Settings().model.data_dir.is_dir():
        pytest.skip(f"no financial-tweets data at {Settings().model.data_dir}")
    for k in THREAD_ENV:  # main() sets these; recorded so that teardown restores them
        monkeypatch.setenv(k, os.environ.get(k, ""))
    out = tmp_path / "r.json"
    rc = be.main(["--texts", "6", "--repeats", "1", "--screen", "4", "--chunk", "3", "--threads", "1",
                  "--allow-busy", "--out", str(out)], loadavg=BUSY)
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["busy"] is True and res["texts"]["count"] == 6 and res["backend"] == "onnx-int8"
    m = res["methods"]
    assert set(m) == {be.REFERENCE, "screened, 4 words", be.NOISE, be.CLASSIFY}
    assert m[be.REFERENCE]["agreement"]["top1"] == 1.0 and m[be.REFERENCE]["speed"]["median"] > 0
    assert 0 <= m["screened, 4 words"]["agreement"]["top3_overlap"] <= 1
    assert m["screened, 4 words"]["tokens_per_text"] <= m[be.REFERENCE]["tokens_per_text"]
    assert "| occlusion |" in capsys.readouterr().out
