"""NAB scoring: hand-computed cases on tiny synthetic series, and NAB's own published results."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.nab import (
    PROFILES,
    NabFile,
    alerts_at,
    default_corpus_dir,
    load_corpus,
    load_file,
    null_score,
    parse_timestamps,
    perfect_score,
    probationary_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
)

FIXTURES = Path(__file__).parent / "fixtures"
STEP = 300.0  # seconds between synthetic rows


def sigma(x: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


MAX_TP = sigma(-1.0)


def make_file(
    n: int,
    window_rows: list[tuple[int, int]],
    probation: int = 0,
    name: str = "synthetic/series.csv",
) -> NabFile:
    ts = np.arange(n, dtype=np.float64) * STEP + 1.4e9
    return NabFile(
        name=name,
        category=name.split("/")[0],
        timestamps=ts,
        values=np.zeros(n),
        windows=tuple((float(ts[a]), float(ts[b])) for a, b in window_rows),
        raw_rows=n,
        duplicate_rows=0,
        out_of_order_rows=0,
        probation_rows=probation,
    )


def alerts(n: int, rows: list[int]) -> np.ndarray:
    a = np.zeros(n, dtype=bool)
    a[rows] = True
    return a


# --------------------------------------------------------------------------- rules


def test_profiles_match_nab_config():
    std = PROFILES["standard"]
    assert (std.tp, std.fp, std.fn) == (1.0, 0.11, 1.0)
    assert PROFILES["reward_low_fp_rate"].fp == 0.22
    assert PROFILES["reward_low_fn_rate"].fn == 2.0


def test_scaled_sigmoid():
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661429815, abs=1e-10)
    assert float(scaled_sigmoid(-0.5)) == pytest.approx(0.84828363995, abs=1e-10)
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(2.999)) == pytest.approx(sigma(2.999))
    assert float(scaled_sigmoid(3.0)) == -1.0
    assert float(scaled_sigmoid(50.0)) == -1.0


def test_probationary_length():
    assert probationary_length(100) == 15
    assert probationary_length(4032) == 604  # floor(604.8)
    assert probationary_length(5000) == 750
    assert probationary_length(22695) == 750  # capped at 15 % of 5000 rows


def test_null_is_minus_one_per_window():
    f = make_file(200, [(40, 49), (100, 119), (150, 150)])
    s = score_file(f, np.zeros(f.n, dtype=bool))
    assert s.raw == -3.0 == null_score(f)
    assert (s.tp, s.fn, s.fp) == (0, 3, 0)
    assert s.delay_rows == (None, None, None)
    assert s.rows_fn == 10 + 20 + 1 and s.rows_tn == 200 - 31


def test_perfect_alerts_on_first_window_rows():
    f = make_file(200, [(40, 49), (100, 119), (150, 150)])
    s = score_file(f, alerts(f.n, [40, 100, 150]))
    assert s.raw == pytest.approx(3.0, abs=1e-12)
    assert perfect_score(f) == 3.0
    assert s.window_scores == pytest.approx((1.0, 1.0, 1.0))
    assert s.delay_rows == (0, 0, 0) and s.delay_seconds == (0.0, 0.0, 0.0)


def test_early_detection_beats_late():
    f = make_file(100, [(40, 49)])
    first = score_file(f, alerts(100, [40])).raw
    middle = score_file(f, alerts(100, [45])).raw
    last = score_file(f, alerts(100, [49])).raw
    assert first == pytest.approx(1.0)
    # position -(49 - 45 + 1) / 10 = -0.5, and -(1 / 10) on the last row
    assert middle == pytest.approx(sigma(-0.5) / MAX_TP)
    assert last == pytest.approx(sigma(-0.1) / MAX_TP)
    assert first > middle > last > 0
    s = score_file(f, alerts(100, [45]))
    assert s.delay_rows == (5,) and s.delay_seconds == (5 * STEP,)


def test_second_detection_in_window_counts_nothing():
    f = make_file(100, [(40, 49)])
    once = score_file(f, alerts(100, [42]))
    twice = score_file(f, alerts(100, [42, 44, 47]))
    assert twice.raw == once.raw == pytest.approx(sigma(-0.8) / MAX_TP)
    assert (twice.tp, twice.fp, twice.rows_tp, twice.rows_fn) == (1, 0, 3, 7)


def test_false_positive_before_any_window_costs_full_weight():
    f = make_file(100, [(40, 49)])
    s = score_file(f, alerts(100, [10, 40]))
    assert s.fp == 1
    assert s.fp_score == pytest.approx(-0.11, abs=1e-15)
    assert s.raw == pytest.approx(1.0 - 0.11)
    assert score_file(make_file(100, []), alerts(100, [10, 11])).raw == pytest.approx(-0.22)


def test_false_positive_right_after_window_costs_almost_nothing():
    f = make_file(400, [(100, 200)])  # 101 rows
    just_after = score_file(f, alerts(400, [201]))
    # position (201 - 200) / (101 - 1) = 0.01
    assert just_after.fp_score == pytest.approx(0.11 * sigma(0.01))
    assert -0.005 < just_after.fp_score < 0
    one_length = score_file(f, alerts(400, [300]))
    assert one_length.fp_score == pytest.approx(0.11 * sigma(1.0))  # ~ -0.1085
    far = score_file(f, alerts(400, [399]))  # position 1.99
    assert far.fp_score == pytest.approx(0.11 * sigma(1.99))
    g = make_file(400, [(10, 20)])  # 11 rows: three lengths past the end is row 50
    assert score_file(g, alerts(400, [50])).fp_score == -0.11
    assert score_file(g, alerts(400, [49])).fp_score == pytest.approx(0.11 * sigma(2.9))


def test_false_positive_measured_from_latest_window():
    f = make_file(300, [(40, 49), (100, 109)])
    s = score_file(f, alerts(300, [110]))
    assert s.fp_score == pytest.approx(0.11 * sigma(1 / 9))


def test_probationary_rows_are_ignored():
    f = make_file(200, [(40, 49)], probation=30)
    s = score_file(f, alerts(200, [0, 5, 29]))
    assert s.raw == null_score(f) == -1.0
    assert s.fp == 0 and s.scored_rows == 170 and s.probation_rows == 30


def test_window_inside_probation_is_not_scored_but_counts_in_perfect():
    f = make_file(200, [(10, 19), (100, 109)], probation=30)
    assert null_score(f) == -1.0  # NAB's null detector never sees the first window
    assert perfect_score(f) == 2.0  # NAB's normaliser counts every labelled window
    s = score_file(f, alerts(200, [10, 100]))
    assert s.raw == pytest.approx(1.0)
    assert (s.windows, s.unscored_windows, s.tp, s.fn, s.fp) == (1, 1, 1, 0, 0)


def test_window_straddling_probation_keeps_its_full_length():
    f = make_file(200, [(40, 49)], probation=45)
    s = score_file(f, alerts(200, [41, 45]))  # the alert at 41 is still probationary
    assert s.raw == pytest.approx(sigma(-0.5) / MAX_TP)
    assert s.delay_rows == (5,)
    missed = score_file(f, alerts(200, [41]))
    assert missed.raw == -1.0 and missed.contributions[45] == -1.0


def test_fp_after_a_probationary_window_is_measured_from_it():
    f = make_file(200, [(10, 19)], probation=30)
    s = score_file(f, alerts(200, [40]))
    assert s.raw == pytest.approx(0.11 * sigma(21 / 9))


def test_contributions_sum_to_raw_and_sit_on_their_rows():
    f = make_file(300, [(40, 49), (100, 119), (200, 209)])
    s = score_file(f, alerts(300, [10, 45, 60, 61, 210, 290]))
    assert s.contributions.sum() == pytest.approx(s.raw)
    assert s.raw == pytest.approx(s.tp_score + s.fp_score + s.fn_score)
    assert s.contributions[100] == -1.0  # the missed window, on its first row
    assert s.contributions[45] == pytest.approx(sigma(-0.5) / MAX_TP)
    assert s.contributions[10] == -0.11
    assert np.count_nonzero(s.contributions) == 8  # 5 false positives, 1 reward, 2 misses
    assert s.sweep_scores[10] == -0.11 and s.sweep_scores[40] == pytest.approx(1.0)


def test_other_profiles():
    f = make_file(100, [(40, 49), (60, 69)])
    low_fn = score_file(f, alerts(100, [40, 5]), "reward_low_FN_rate")  # NAB's spelling works
    assert low_fn.raw == pytest.approx(1.0 - 0.11 - 2.0)
    low_fp = score_file(f, alerts(100, [40, 5]), "reward_low_fp_rate")
    assert low_fp.raw == pytest.approx(1.0 - 0.22 - 1.0)
    with pytest.raises(KeyError):
        score_file(f, alerts(100, []), "nope")


def test_alert_array_must_match_the_file():
    f = make_file(100, [(40, 49)])
    with pytest.raises(ValueError):
        score_file(f, np.zeros(99, dtype=bool))


def test_alerts_at():
    f = make_file(10, [])
    ts = f.timestamps
    marks = alerts_at(f, [ts[2], ts[7]])
    assert np.flatnonzero(marks).tolist() == [2, 7]
    with pytest.raises(ValueError):
        alerts_at(f, [ts[2] + 1.0])
    snapped = alerts_at(f, [ts[2] + 1.0, ts[9] + 1.0], strict=False)
    assert np.flatnonzero(snapped).tolist() == [3]
    as_text = str(np.datetime64(int(ts[4]), "s")).replace("T", " ")
    assert np.flatnonzero(alerts_at(f, [as_text])).tolist() == [4]


def test_parse_timestamps_reads_nab_formats_as_utc():
    got = parse_timestamps(["2014-04-01 00:00:00", "2014-04-10 07:15:00.000000"])
    assert got.tolist() == [1396310400.0, 1396310400.0 + 9 * 86400 + 7 * 3600 + 15 * 60]


def test_score_corpus_normalises_and_groups_by_category():
    a = make_file(100, [(40, 49)], name="catA/one.csv")
    b = make_file(100, [(20, 29), (60, 69)], name="catA/two.csv")
    c = make_file(100, [], name="quiet/flat.csv")
    files = [a, b, c]
    res = score_corpus(
        files,
        {a.name: alerts(100, [40]), b.name: alerts(100, [0]), c.name: alerts(100, [50, 51])},
    )
    # raw = 1 (a) + (-0.11 - 2) (b) + (-0.22) (c); null = -3; perfect = 3
    assert res.raw == pytest.approx(1.0 - 0.11 - 2.0 - 0.22)
    assert (res.null, res.perfect) == (-3.0, 3.0)
    assert res.normalized == pytest.approx(100 * (res.raw + 3.0) / 6.0)
    cat_a, quiet = res.categories["catA"], res.categories["quiet"]
    assert (cat_a.windows, cat_a.tp, cat_a.fn, cat_a.fp) == (3, 1, 2, 1)
    assert cat_a.normalized == pytest.approx(100 * (1.0 - 2.11 + 3.0) / 6.0)
    assert quiet.normalized is None and quiet.raw == pytest.approx(-0.22) and quiet.fp == 2
    days = 99 * STEP / 86400
    assert quiet.scored_days == pytest.approx(days)
    assert quiet.false_alerts_per_day == pytest.approx(2 / days)
    assert res.files[b.name].fn == 2
    perfect = score_corpus(
        files, {a.name: alerts(100, [40]), b.name: alerts(100, [20, 60]), c.name: alerts(100, [])}
    )
    assert perfect.normalized == pytest.approx(100.0)
    with pytest.raises(KeyError):
        score_corpus(files, {a.name: alerts(100, [])})


# --------------------------------------------------------------------------- loading


def test_load_file_merges_duplicates_and_sorts(tmp_path: Path):
    (tmp_path / "cat").mkdir()
    rows = ["timestamp,value"]
    stamps = [f"2020-01-01 00:{m:02d}:00" for m in range(20)]
    order = [0, 1, 1, 2, 4, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    for k, i in enumerate(order):
        rows.append(f"{stamps[i]},{10.0 * i + (2.0 if k == 2 else 0.0)}")
    (tmp_path / "cat" / "s.csv").write_text("\n".join(rows) + "\n")
    f = load_file(tmp_path, "cat/s.csv", [["2020-01-01 00:10:00.000000", "2020-01-01 00:12:00.000000"]])
    assert f.category == "cat" and f.raw_rows == 21
    assert f.n == 20 and f.duplicate_rows == 1
    assert f.out_of_order_rows == 2  # the repeated 00:01 and 00:03 after 00:04
    assert np.all(np.diff(f.timestamps) == 60.0)
    assert f.values[1] == pytest.approx(11.0)  # mean of 10 and 12
    assert f.values[3] == 30.0 and f.values[4] == 40.0
    # NAB skips the first floor(0.15 * 21) = 3 CSV rows: 00:00, 00:01, 00:01.
    assert f.probation == 2
    assert f.windows == ((f.timestamps[10], f.timestamps[12]),)
    s = score_file(f, alerts(20, [10]))
    assert s.window_rows == ((10, 12),) and s.raw == pytest.approx(1.0)


def test_load_file_rejects_overlapping_windows(tmp_path: Path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "s.csv").write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:01:00,2\n")
    with pytest.raises(ValueError):
        load_file(
            tmp_path,
            "c/s.csv",
            [["2020-01-01 00:00:00", "2020-01-01 00:01:00"], ["2020-01-01 00:01:00", "2020-01-01 00:01:00"]],
        )


def test_load_corpus_names_the_missing_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        load_corpus(tmp_path / "nowhere")


def test_default_corpus_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("MARKETPULSE_NAB_DIR", str(tmp_path))
    assert default_corpus_dir() == tmp_path
    monkeypatch.delenv("MARKETPULSE_NAB_DIR")
    assert default_corpus_dir().parts[-3:] == ("shared", "data", "nab-dev")


# --------------------------------------------------------------------------- NAB's published results

CORPUS = default_corpus_dir()
needs_corpus = pytest.mark.skipif(
    not (CORPUS / "labels_windows.json").is_file(),
    reason=f"NAB dev corpus not found at {CORPUS} (set MARKETPULSE_NAB_DIR)",
)
PUBLISHED = json.loads((FIXTURES / "nab_numenta_published.json").read_text())["checks"]


@pytest.fixture(scope="module")
def corpus() -> dict[str, NabFile]:
    return {f.name: f for f in load_corpus(CORPUS)}


@needs_corpus
@pytest.mark.parametrize("check", PUBLISHED, ids=[c["file"] for c in PUBLISHED])
def test_reproduces_published_nab_result(check: dict, corpus: dict[str, NabFile]):
    f = corpus[check["file"]]
    pub = check["published"]
    assert f.raw_rows == pub["raw_rows"]
    assert f.probation == pub["probation_rows"]
    s = score_file(f, alerts_at(f, check["alert_timestamps"]), check["profile"])

    assert s.raw == pytest.approx(pub["score"], abs=1e-9)
    assert (s.tp, s.fn) == (pub["windows_detected"], pub["windows_missed"])
    assert (s.rows_tp, s.rows_fp, s.rows_fn) == (pub["rows_tp"], pub["rows_fp"], pub["rows_fn"])
    # NAB counts raw rows; each merged duplicate here is a scored, alert-free row there
    assert s.rows_tn + f.duplicate_rows == pub["rows_tn"]

    # Per event: NAB writes a window's reward (or -A_FN) on the window's first row and each
    # false positive's penalty on its own row.
    by_time = {t: v for t, v in zip(parse_timestamps([t for t, _ in pub["s_t_standard_nonzero"]]),
                                    (v for _, v in pub["s_t_standard_nonzero"]))}
    ours: dict[float, float] = {}
    for (a, _), reward in zip(s.window_rows, s.window_scores):
        ours[float(f.timestamps[a])] = reward
    for i in np.flatnonzero(s.contributions):
        if not any(a <= i <= b for a, b in s.window_rows):
            ours[float(f.timestamps[i])] = float(s.contributions[i])
    assert sorted(ours) == sorted(by_time)
    for t, v in by_time.items():
        assert ours[t] == pytest.approx(v, abs=1e-11)


@needs_corpus
def test_dev_corpus_baselines(corpus: dict[str, NabFile]):
    files = list(corpus.values())
    assert len(files) == 48
    assert sum(len(f.windows) for f in files) == 83
    assert sum(null_score(f) for f in files) == -83.0
    assert sum(perfect_score(f) for f in files) == 83.0
    nothing = score_corpus(files, {f.name: np.zeros(f.n, dtype=bool) for f in files})
    assert nothing.normalized == 0.0
    assert nothing.categories["artificialNoAnomaly"].normalized is None
