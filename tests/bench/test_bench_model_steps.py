"""bench.bench_model_steps: what 'keeps accuracy' means, the operator profile of a real graph, the
calibration texts and the load gate."""
from __future__ import annotations

import pytest

from bench import bench_model_steps as bms


def test_a_step_keeps_accuracy_when_neither_head_falls_more_than_the_tolerance():
    ref = {"sentiment": 0.85, "topic": 0.90}
    assert bms.keeps_accuracy({"sentiment": 0.84, "topic": 0.93}, ref)  # exactly 0.01 lower, and a gain
    assert not bms.keeps_accuracy({"sentiment": 0.835, "topic": 0.90}, ref)  # sentiment fell 0.015
    assert not bms.keeps_accuracy({"sentiment": 0.86, "topic": 0.8899}, ref)


def test_the_table_shows_every_step_against_the_shipped_int8_graph():
    cell = lambda m: {"median": m, "min": m - 1, "max": m + 1}  # noqa: E731
    res = {
        "steps": {
            "fp32": {"texts_per_s": cell(50.0), "accuracy": {"sentiment": 0.85, "topic": 0.9}, "keeps_accuracy": True},
            bms.BASELINE: {"texts_per_s": cell(100.0), "accuracy": {"sentiment": 0.846, "topic": 0.9},
                           "keeps_accuracy": True},
            "int8 dynamic, 64 rows per pass": {"texts_per_s": cell(110.0), "graph": bms.SDPA_INT8},
        },
        "tokenization": cell(5000.0),
        "op_profile": {"int8 dynamic": {"MatMul": 60.0, "Softmax": 10.0, "(other operators)": 30.0}},
        "flagged": [],
        "machine": {"cpu": "AMD EPYC", "cores": 2, "host": "vm"}, "threads": 2, "date": "2026-12-01T00:00:00",
        "load": {"loadavg": [0.2, 0.3, 0.4], "other_cores_mean": 0.05}, "repeats": 5,
        "texts": {"source": "512 tweets", "tokens_mean": 38.4, "tokens_p95": 62, "per_call": 64},
        "dev_split": {"sentiment": 954, "topic": 1699}, "command": "python -m bench.bench_model_steps",
    }
    table = bms.markdown(res)
    assert "load average 0.20 at start" in table and "`python -m bench.bench_model_steps`" in table
    assert "| fp32 | 50.0 (49–51) | ×0.50 | 0.8500 | 0.9000 | yes |" in table
    assert "| int8 dynamic, 64 rows per pass | 110.0 (109–111) | ×1.10 | same graph | | |" in table
    assert "| tokenization alone (ceiling) | 5000 (4999–5001) | ×50.0 |" in table
    assert "| MatMul | 60.0 % |" in table and table.index("| Softmax") < table.index("| (other operators)")


def test_calibration_uses_training_tweets_only():
    from marketpulse.settings import Settings
    from models.build import ensure_built
    from models.tokenizer import FastTokenizer

    ms = Settings().model
    if not ms.data_dir.is_dir():
        pytest.skip(f"no financial-tweets data at {ms.data_dir}")
    tok = FastTokenizer.from_file(ensure_built(ms, need=("tokenizer",))["tokenizer"])
    texts, _ = bms.load_texts(ms.data_dir, 4 * bms.CALIBRATION_TEXTS, seed=1)
    dev = set(texts[:100])  # stands for the dev split: the first texts the sample would take
    batches = bms.calibration_batches(tok, 128, ms.data_dir, dev)
    assert sum(len(b["input_ids"]) for b in batches) == bms.CALIBRATION_TEXTS
    calibrated = {tuple(r[m > 0]) for b in batches for r, m in zip(b["input_ids"], b["attention_mask"])}
    held = {tuple(ids) for ids in tok(sorted(dev), truncation=True, max_length=128)["input_ids"]}
    assert not calibrated & held


def test_a_busy_machine_is_refused_before_anything_loads(monkeypatch, capsys):
    monkeypatch.setattr(bms, "check_load", _busy)
    assert bms.main(["--no-docs"]) == bms.EXIT_BUSY
    assert "refusing to run" in capsys.readouterr().err


def _busy(cores):
    from bench.machine_load import check_load

    return check_load(cores, lambda: (99.0, 99.0, 99.0))
