"""bench.bench_e2e: options, the stream of real tweets, metrics, rates, the load gate; bench.profiled:
merging, differencing and grouping profiles; bench.machine_load: per-process CPU."""
from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone

import pytest

from bench import bench_e2e as be
from bench import profiled as pf
from bench.machine_load import OthersCpuMeter, process_cpu_seconds
from marketpulse.settings import Settings

BUSY = lambda: (99.0, 99.0, 99.0)  # noqa: E731


# -- options ----------------------------------------------------------------------------------------

def test_defaults_measure_one_and_two_workers_and_two_refresh_intervals_on_real_tweets():
    a = be.parse_args([])
    assert (a.workers, a.refresh_intervals, a.fractions, a.texts) == ([1, 2], ["1s", "200ms"], [0.25, 0.5, 1.0],
                                                                      "tweets")
    assert a.duration == 30 and not a.profile and not a.allow_busy
    q = be.parse_args(["--quick", "--workers", "2", "--refresh-intervals", "500ms", "--texts", "generated"])
    assert (q.workers, q.refresh_intervals, q.duration, q.texts) == ([2], ["500ms"], 8.0, "generated")


@pytest.mark.parametrize("argv", [
    ["--workers", "0"], ["--workers", "4"], ["--workers", "one"], ["--refresh-intervals", "1.5s"],
    ["--refresh-intervals", "-1"], ["--refresh-intervals", ""], ["--fractions", "0"], ["--records", "10"],
    ["--duration", "0"], ["--profile-out", "x.pstats"], ["--texts", "news"],
])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit) as exc:
        be.parse_args(argv)
    assert exc.value.code == 2


def test_model_threads_per_worker():
    # one worker: a pool of all cores; several: the cores split, never below one thread
    assert [be.threads_per_worker(2, n) for n in (1, 2, 3)] == [2, 1, 1]
    assert be.threads_per_worker(8, 3) == 2


# -- the stream -------------------------------------------------------------------------------------

def test_tweets_become_valid_raw_records_and_the_worker_would_dead_letter_none(tmp_path):
    from stream.validate import validate_record

    texts = ["$AAPL beats estimates https://t.co/x", "https://t.co/only-a-link", "   ", "x" * 50,
             "Fed hikes by 75 bp @someone"]
    when = datetime(2026, 12, 1, 12, tzinfo=timezone.utc)
    events, dropped = be.tweet_events(texts, max_text_chars=40, when=when)
    assert dropped == 3  # a bare link and blank text leave nothing to classify; one is over the limit
    assert [e.text for e in events] == [texts[0], texts[4]]
    assert all(e.source == "social" and e.source_name == be.SOURCE_NAME and e.published_at == when for e in events)

    pipe = be.Pipeline(Settings(), tmp_path)
    traffic = be.Traffic("tweets", "test", events)
    recs = traffic.records(pipe.settings, 5, "sat1w", when=when)
    assert [r.key for r in recs] == [f"sat1w-{i:06d}".encode() for i in range(5)]
    assert {r.topic for r in recs} == {pipe.settings.kafka.topics.raw_social}
    assert all(dict(r.headers)["marketpulse-schema"] == b"raw-event/1.0" for r in recs)
    decoded = [validate_record(r.value, pipe.settings.batch.max_text_chars) for r in recs]
    assert [d.text for d in decoded] == [texts[0], texts[4]] * 2 + [texts[0]]  # cycled, same order every time
    # the model stage sees what the worker's enrichment makes of them: no URL, handle pseudonymised
    model = be.model_texts(pipe.settings, recs[:2])
    assert model[0] == "$AAPL beats estimates"
    assert model[1].startswith("Fed hikes by 75 bp @") and "@someone" not in model[1]


def test_every_process_gets_its_own_settings_file_from_one_base(tmp_path):
    pipe = be.Pipeline(Settings(), tmp_path)
    assert pipe.settings.pseudonym_key.get_secret_value() != "marketpulse-local-pseudonym-key"
    assert pipe.settings.kafka.topics.partitions == be.PARTITIONS
    s = pipe.write("worker-x", {"model": {"threads": 1}, "metrics_port": 9999})
    assert s.model.threads == 1 and s.metrics_port == 9999
    assert s.kafka.worker_group == pipe.settings.kafka.worker_group  # one consumer group
    sink = pipe.write("sink-x", {"elasticsearch": {"index_prefix": f"{pipe.prefix}-r1-events",
                                                   "refresh_interval": "200ms"}})
    assert sink.elasticsearch.refresh_interval == "200ms"
    assert sink.elasticsearch.url == pipe.settings.elasticsearch.url  # merged, not replaced


# -- measures ---------------------------------------------------------------------------------------

def test_sustained_rate_leaves_out_start_up_and_tail():
    times = [0.0] * 5 + [10 + i * 0.1 for i in range(90)] + [100.0] * 5  # 10 records/s in the middle
    assert be.sustained_rate(times) == pytest.approx(10, rel=0.02)
    assert be.sustained_rate([1.0, 2.0]) != be.sustained_rate([1.0, 2.0])  # too few: nan


METRICS = """# HELP marketpulse_records_in_total Raw records consumed
# TYPE marketpulse_records_in_total counter
marketpulse_records_in_total{topic="b.raw.news"} 3.0
marketpulse_records_in_total{topic="b.raw.social"} 97.0
# HELP marketpulse_batch_size Records per micro-batch
# TYPE marketpulse_batch_size histogram
marketpulse_batch_size_bucket{le="64.0"} 2.0
marketpulse_batch_size_bucket{le="+Inf"} 2.0
marketpulse_batch_size_count 2.0
marketpulse_batch_size_sum 100.0
"""


def test_worker_metrics_are_read_and_differenced():
    after = be.metric_samples(METRICS)
    assert be.metric_total(after, "marketpulse_records_in_total") == 100
    assert be.metric_total(after, "marketpulse_batch_size") == 0  # a histogram's samples have suffixes
    assert be.metric_total(after, "marketpulse_batch_size_count") == 2
    before = {'marketpulse_records_in_total{topic="b.raw.social"}': 40.0}
    d = be.metric_deltas(before, after, be.WORKER_METRICS)
    assert d["records"] == 60 and d["batches"] == 2 and d["batch_records"] == 100 and d["model_s"] == 0


def test_the_assignments_a_worker_logged_are_counted():
    log = "x\n[INFO] Setting newly assigned partitions: ...\ny\n[INFO] Setting newly assigned partitions: {}\n"
    assert be.assignments(log) == 2 and be.assignments("") == 0


# -- profiles ---------------------------------------------------------------------------------------

ORT = ("~", 0, "<method 'run' of 'onnxruntime.capi.onnxruntime_pybind11_state.InferenceSession' objects>")
ENCODE = ("~", 0, "<method 'encode_batch' of 'tokenizers.Tokenizer' objects>")
EPOLL = ("~", 0, "<method 'poll' of 'select.epoll' objects>")
LEN = ("~", 0, "<built-in method builtins.len>")
ROOT = pf.ROOT
CLEAN = (f"{ROOT}/marketpulse/text.py", 20, "clean_text")
VALIDATE = (f"{ROOT}/stream/validate.py", 80, "check_record")
LOADS = ("/usr/lib/python3.11/json/__init__.py", 299, "loads")
FAUST = (f"{ROOT}/.venv/lib/python3.11/site-packages/faust/streams.py", 800, "_py_aiter")
TO_JSON = ("~", 0, "<method 'to_json' of 'pydantic_core._pydantic_core.SchemaSerializer' objects>")
VALIDATE_PY = ("~", 0, "<method 'validate_python' of 'pydantic_core._pydantic_core.SchemaValidator' objects>")


@pytest.mark.parametrize("func,category", [
    (ORT, pf.MODEL_RUN), (ENCODE, pf.TOKENIZE), (EPOLL, pf.IDLE), (LEN, None), (CLEAN, pf.ENRICH),
    (VALIDATE, pf.VALIDATE), (LOADS, pf.JSON_CODEC), (FAUST, pf.FAUST), (TO_JSON, pf.JSON_CODEC),
    (VALIDATE_PY, pf.VALIDATE), (("~", 0, "<method 'acquire' of '_thread.lock' objects>"), pf.IDLE),
    ((f"{ROOT}/models/batching.py", 40, "run_batched"), pf.MODEL_PREPOST),
    ((f"{ROOT}/models/tokenizer.py", 30, "__call__"), pf.TOKENIZE),
    ((f"{ROOT}/.venv/lib/python3.11/site-packages/aiokafka/consumer/fetcher.py", 1, "f"), pf.FAUST),
    (("/usr/lib/python3.11/typing.py", 1, "inner"), None),
])
def test_functions_fall_into_categories_by_where_they_live(func, category):
    assert pf.own_category(func) == category


def st(cc, tt, ct, callers=None):
    return (cc, cc, tt, ct, callers or {})


def test_generic_helpers_are_charged_to_their_callers_in_proportion():
    stats = {
        ORT: st(10, 5.0, 5.0), EPOLL: st(100, 20.0, 20.0), CLEAN: st(50, 1.0, 2.0),
        VALIDATE: st(50, 0.5, 1.0),
        # len: 1.5 s under clean_text, 0.5 s under check_record
        LEN: (400, 400, 2.0, 2.0, {CLEAN: (300, 300, 1.5, 1.5), VALIDATE: (100, 100, 0.5, 0.5)}),
        ("/usr/lib/python3.11/typing.py", 1, "orphan"): st(1, 0.25, 0.25),  # no caller known: other
    }
    cats = pf.breakdown(stats)
    assert cats[pf.MODEL_RUN] == 5.0 and cats[pf.IDLE] == 20.0
    assert cats[pf.ENRICH] == pytest.approx(2.5) and cats[pf.VALIDATE] == pytest.approx(1.0)
    assert cats[pf.OTHER] == pytest.approx(0.25)
    assert sum(cats.values()) == pytest.approx(sum(s[2] for s in stats.values()))  # nothing lost, nothing twice


def test_profiles_merge_across_threads_and_difference_between_snapshots():
    a = {ORT: st(1, 1.0, 1.0), LEN: (2, 2, 0.1, 0.1, {CLEAN: (2, 2, 0.1, 0.1)})}
    b = {ORT: st(2, 3.0, 3.0), CLEAN: st(1, 0.5, 0.5)}
    merged = pf.merge_stats(a, b)
    assert merged[ORT][:4] == (3, 3, 4.0, 4.0) and merged[CLEAN][:4] == (1, 1, 0.5, 0.5)
    later = pf.merge_stats(merged, {ORT: st(5, 10.0, 10.0), LEN: (3, 3, 0.3, 0.3, {CLEAN: (3, 3, 0.3, 0.3)})})
    d = pf.diff_stats(merged, later)
    assert d[ORT][:4] == (5, 5, 10.0, 10.0)
    assert d[LEN][:4] == (3, 3, pytest.approx(0.3), pytest.approx(0.3)) and d[LEN][4][CLEAN][0] == 3
    assert CLEAN not in d  # not called in between


def test_a_profiled_thread_started_later_is_seen_and_the_report_adds_up():
    profiles = pf.ThreadProfiles()
    profiles.install()
    try:
        before = profiles.snapshot()

        def work():
            from marketpulse.text import clean_text

            for _ in range(3000):
                clean_text("<b>Fed</b> hikes &amp; stocks fall https://t.co/x")

        t = threading.Thread(target=work)
        t.start()
        t.join()
        after = profiles.snapshot()
    finally:
        threading.setprofile(None)
        import sys

        sys.setprofile(None)
    d = pf.diff_stats(before, after)
    names = {f[2] for f in d}
    assert "clean_text" in names and "work" in names  # the other thread's calls
    rep = be.profile_report(d, records=3000, model_alone_per_s=100.0)
    assert rep["busy_s"] > 0 and rep["model_stage_alone_ms_per_record"] == 10.0
    enrich = next(r for r in rep["categories"] if r["category"] == pf.ENRICH)
    assert enrich["seconds"] > 0
    total = sum(r["seconds"] for r in rep["categories"]) + rep["idle_s"]
    assert total == pytest.approx(rep["thread_seconds"], abs=0.05)
    assert any(t["function"].startswith("marketpulse/text.py") for t in rep["top_cumulative_project"])


def test_snapshots_are_written_on_request(tmp_path):
    profiles = pf.ThreadProfiles()
    threading.Thread(target=pf._serve_requests, args=(tmp_path, profiles), daemon=True).start()
    got = pf.request_snapshot(tmp_path, "first", timeout=10)
    assert got == {} and (tmp_path / "first.pstats").exists() and not (tmp_path / "first.request").exists()


# -- load -------------------------------------------------------------------------------------------

def test_process_cpu_is_read_from_proc_and_others_exclude_ours():
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    t0 = process_cpu_seconds(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert process_cpu_seconds(os.getpid()) - t0 >= 0.2
    assert process_cpu_seconds(2**22 + 12345) is None
    meter = OthersCpuMeter(lambda: []).start()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert meter.stop() is not None  # our own busy loop is not someone else's load


def test_busy_machine_is_refused_before_anything_loads(tmp_path, monkeypatch, capsys):
    def must_not_run(*a, **k):
        raise AssertionError("a refused run must not load data or touch the stack")

    monkeypatch.setattr(be, "dev_tweets", must_not_run)
    monkeypatch.setattr(be, "Pipeline", must_not_run)
    out = tmp_path / "r.json"
    assert be.main(["--out", str(out)], loadavg=BUSY) == be.EXIT_BUSY
    assert "refusing to run" in capsys.readouterr().err and not out.exists()


def test_the_tables_say_what_was_measured():
    rate = lambda f, refresh, p99, wait: {  # noqa: E731
        "fraction": f, "refresh_interval": refresh, "input_rate": 50 * f, "records": 100, "searchable": 100,
        "throughput": 50 * f, "latency_s": {"p50": 0.5, "p95": 0.8, "p99": p99, "max": 1.2},
        "breakdown_p50_s": {"produce_to_processed": 0.1, "processed_to_indexed": 0.01, "indexed_to_searchable": wait}}
    worker = {"records": 500, "process_share": 0.9, "model_share": 0.8, "mean_batch": 60.0, "rebalances": 0}
    res = {
        "busy": True, "busy_reasons": ["1-minute load average at start 1.50 > 1.00 (0.5 x 2 cores)."],
        "machine": {"cores": 2, "cpu": "cpu", "memory_gib": 8, "host": "h"}, "date": "2026-12-01T00:00:00+00:00",
        "command": "c", "wall_s": 100.0, "load": {"loadavg_at_start": [1.5, 1, 1], "other_cores_mean": 0.7},
        "texts": {"count": 1000, "kind": "tweets", "source": "dev split"}, "refresh_intervals": ["1s", "200ms"],
        "model_stage": {"records_per_s": 100.0, "batch_size": 64, "explain_negative": False, "backend": "onnx-int8",
                        "threads": 2},
        "saturation": [
            {"workers": 1, "threads_per_worker": 2, "records": 1000, "records_per_s": 90.0, "ratio_to_model": 0.9,
             "per_worker": {"w1": worker}, "sink": {"docs_per_bulk": 40.0, "ms_per_bulk": 12.0},
             "cpu_ms_per_record": {"workers": 5.0, "sink": 1.0, "kafka_and_elasticsearch": 3.0}},
            {"workers": 2, "threads_per_worker": 1, "records": 1000, "records_per_s": 92.0, "ratio_to_model": 0.92,
             "per_worker": {"w1": worker, "w2": dict(worker, records=500)}, "sink": {"docs_per_bulk": None,
                                                                                   "ms_per_bulk": None}}],
        "scaling": {"from": 1, "to": 2, "ratio": 92 / 90},
        "rates": [rate(0.5, "1s", 1.4, 0.6), rate(0.5, "200ms", 0.7, 0.1)],
    }
    md = be.markdown(res)
    assert md.startswith("**Busy machine")
    assert "| 1 | 2 | **90** | 90% | 500 | 90% / 80% | 5.0 / 1.0 / 3.0 |" in md
    assert "| 2 | 1 | **92** | 92% | 500 + 500 | 90% / 80% + 90% / 80% | – / – / – |" in md
    assert "1 worker(s): micro-batches of 60 records on average, sink bulks of 40 documents (12 ms each)" in md
    assert "1 → 2 workers: ×1.02" in md
    assert "p99 at half load: 1.40 s with refresh 1s, 0.70 s with refresh 200ms" in md
    assert "Refresh 1s → 200ms: p99 1.40 → 0.70 s (-0.70 s), median wait for the refresh 0.60 → 0.10 s" in md
    json.dumps(res)  # the results stay JSON
