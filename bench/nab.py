"""Numenta Anomaly Benchmark (NAB) scoring.

    from bench.nab import load_corpus, score_corpus
    files = load_corpus()                                  # ../shared/data/nab-dev by default
    result = score_corpus(files, {f.name: alerts for f in files})
    result.normalized, result.categories["realKnownCause"].normalized

Follows the rules of NAB's reference scorer (numenta/NAB, ``nab/sweeper.py`` and the
normalisation in ``nab/runner.py``), profiles from ``config/profiles.json``:

* The first ``min(floor(0.15 * rows), 0.15 * 5000)`` rows of a file are a probationary period:
  alerts there are ignored, and a window with no row after it is not scored at all.
* An alert inside a labelled window scores ``A_TP * sigma(p) / sigma(-1)`` with
  ``p = -(last_row - i + 1) / window_rows`` -- exactly ``A_TP`` on the window's first row,
  falling towards 0 at its end.  Only the best (earliest) alert of a window counts.
* A window without an alert costs ``-A_FN``.
* An alert outside every window scores ``A_FP * sigma(p)`` with
  ``p = (i - previous_window_last_row) / (previous_window_rows - 1)``: ~0 right after a window,
  ``-A_FP`` from three window lengths on, and ``-A_FP`` when no window precedes it.
* ``sigma(x) = 2 / (1 + exp(5x)) - 1``, and ``-1`` for ``x >= 3``.
* Normalised score over a set of files: ``100 * (raw - null) / (perfect - null)`` where
  ``null`` is the score of a detector that never alerts and ``perfect`` is ``A_TP`` per labelled
  window (NAB counts every window of the label file there, probationary or not).

NAB scores the raw CSV rows.  Here a file is scored on its unique, sorted timestamps (duplicate
rows merged), which is what a streaming detector sees; the probationary boundary is kept at the
same timestamp as NAB's (see ``load_file``).  On the dev corpus no duplicate sits in or near a
window, so scores agree with NAB's except that an alert repeated on duplicate rows counts once.
Timestamps are naive in NAB and are read as UTC.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PROFILES",
    "CostMatrix",
    "NabFile",
    "FileScore",
    "GroupScore",
    "CorpusScore",
    "default_corpus_dir",
    "load_file",
    "load_corpus",
    "probationary_length",
    "scaled_sigmoid",
    "score_file",
    "null_score",
    "perfect_score",
    "score_corpus",
    "alerts_at",
    "parse_timestamps",
]

PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = 5000  # NAB caps the probationary period at 15 % of 5000 rows
LABELS_FILE = "labels_windows.json"
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class CostMatrix:
    """Weights of one NAB application profile (``A_TP``, ``A_FP``, ``A_FN``, ``A_TN``)."""

    tp: float
    fp: float
    fn: float
    tn: float  # listed by NAB but never used in scoring


# config/profiles.json of numenta/NAB
PROFILES: dict[str, CostMatrix] = {
    "standard": CostMatrix(tp=1.0, fp=0.11, fn=1.0, tn=1.0),
    "reward_low_fp_rate": CostMatrix(tp=1.0, fp=0.22, fn=1.0, tn=1.0),
    "reward_low_fn_rate": CostMatrix(tp=1.0, fp=0.11, fn=2.0, tn=1.0),
}


def _profile(profile: str | CostMatrix) -> tuple[str, CostMatrix]:
    if isinstance(profile, CostMatrix):
        return "custom", profile
    key = profile.lower()  # NAB spells them reward_low_FP_rate / reward_low_FN_rate
    if key not in PROFILES:
        raise KeyError(f"unknown NAB profile {profile!r}; known: {sorted(PROFILES)}")
    return key, PROFILES[key]


@dataclass(frozen=True, eq=False)
class NabFile:
    """One NAB series on its unique, sorted timestamps."""

    name: str  # "realKnownCause/nyc_taxi.csv"
    category: str  # "realKnownCause"
    timestamps: np.ndarray  # float64 epoch seconds (UTC), sorted, unique
    values: np.ndarray  # float64, one per unique timestamp (duplicates merged by mean)
    windows: tuple[tuple[float, float], ...]  # epoch seconds, inclusive, sorted by start
    raw_rows: int  # rows in the CSV
    duplicate_rows: int  # rows merged into an earlier row with the same timestamp
    out_of_order_rows: int  # rows whose timestamp was not after the previous row's
    # Rows (of ``timestamps``) in the probationary period.  None: NAB's rule on len(timestamps).
    probation_rows: int | None = None

    @property
    def n(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def probation(self) -> int:
        if self.probation_rows is not None:
            return min(int(self.probation_rows), self.n)
        return probationary_length(self.n)


@dataclass(frozen=True, eq=False)
class FileScore:
    name: str
    profile: str
    raw: float  # NAB raw score of the file
    tp: int  # windows detected
    fn: int  # windows missed (each costs -A_FN)
    fp: int  # alerts outside every window, after the probationary period
    windows: int  # windows scored (at least one row after the probationary period)
    unscored_windows: int  # labelled windows NAB does not score (in probation, or no rows)
    tp_score: float  # sum of the window rewards
    fp_score: float  # sum of the false-positive penalties (<= 0)
    fn_score: float  # -A_FN * fn
    # NAB's per-file TP/TN/FP/FN columns: counts of scored rows, not of windows.
    rows_tp: int
    rows_fp: int
    rows_fn: int
    rows_tn: int
    scored_rows: int
    probation_rows: int
    scored_days: float  # time covered by the scored rows
    # One entry per scored window, in time order.
    window_rows: tuple[tuple[int, int], ...]  # (first row, last row) indices
    window_scores: tuple[float, ...]  # reward of the first detection, or -A_FN
    delay_rows: tuple[int | None, ...]  # first detection minus window's first row; None if missed
    delay_seconds: tuple[float | None, ...]
    # Per-row share of ``raw``: each false positive on its row, each window's reward on its
    # first detection, each miss on the window's first scored row.  Sums to ``raw``.
    contributions: np.ndarray = field(repr=False)
    # NAB's S(t): what an alert on each row would score (window reward or FP penalty).
    sweep_scores: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class GroupScore:
    """Totals over a set of files (the whole corpus, or one category)."""

    name: str
    files: int
    windows: int  # windows scored
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # false-positive alerts
    raw: float
    null: float
    perfect: float
    normalized: float | None  # None where perfect == null (no windows)
    scored_days: float
    false_alerts_per_day: float | None  # fp / scored series-days


@dataclass(frozen=True, eq=False)
class CorpusScore:
    profile: str
    overall: GroupScore
    categories: Mapping[str, GroupScore]
    files: Mapping[str, FileScore]

    @property
    def normalized(self) -> float | None:
        return self.overall.normalized

    @property
    def raw(self) -> float:
        return self.overall.raw

    @property
    def null(self) -> float:
        return self.overall.null

    @property
    def perfect(self) -> float:
        return self.overall.perfect


# --------------------------------------------------------------------------- loading


def default_corpus_dir() -> Path:
    env = os.environ.get("MARKETPULSE_NAB_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared" / "data" / "nab-dev"


def parse_timestamps(values: Iterable[Any]) -> np.ndarray:
    """Timestamps -> float64 epoch seconds (UTC).

    Accepts NAB strings ("2014-04-01 00:00:00", "2014-04-10 07:15:00.000000"), numbers (already
    epoch seconds), ``datetime`` (naive read as UTC) and ``numpy.datetime64``.
    """
    items = list(values)
    if not items:
        return np.empty(0, dtype=np.float64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in items):
        return np.asarray(items, dtype=np.float64)
    if all(isinstance(v, str) for v in items):
        stamps = np.array([v.strip() for v in items], dtype="datetime64[us]")
        return (stamps - np.datetime64(0, "us")) / np.timedelta64(1, "s")
    out = np.empty(len(items), dtype=np.float64)
    for i, v in enumerate(items):
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out[i] = float(v)
            continue
        if isinstance(v, datetime):
            if v.tzinfo is not None:
                out[i] = v.timestamp()
                continue
            v = np.datetime64(v.replace(tzinfo=None), "us")
        elif isinstance(v, str):
            v = np.datetime64(v.strip(), "us")
        elif not isinstance(v, np.datetime64):
            raise TypeError(f"cannot read {v!r} as a timestamp")
        out[i] = (v.astype("datetime64[us]") - np.datetime64(0, "us")) / np.timedelta64(1, "s")
    return out


def probationary_length(n_rows: int) -> int:
    """NAB's probationary period for a file of ``n_rows`` rows."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * PROBATION_CAP_ROWS))


def _parse_windows(windows: Iterable[Sequence[Any]]) -> tuple[tuple[float, float], ...]:
    pairs = [tuple(w) for w in windows]
    for w in pairs:
        if len(w) != 2:
            raise ValueError(f"a window is a [start, end] pair, got {w!r}")
    starts = parse_timestamps([w[0] for w in pairs])
    ends = parse_timestamps([w[1] for w in pairs])
    out = sorted(zip(starts.tolist(), ends.tolist()))
    for s, e in out:
        if e < s:
            raise ValueError(f"window ends before it starts: {s} > {e}")
    for (_, e0), (s1, _) in zip(out, out[1:]):
        if s1 <= e0:
            raise ValueError("labelled windows overlap")
    return tuple(out)


def load_file(root: Path, name: str, windows: Iterable[Sequence[Any]]) -> NabFile:
    """Read ``root/name`` (columns timestamp,value) with its labelled windows.

    Rows are sorted by timestamp and rows sharing a timestamp are merged (mean value).  The
    probationary period keeps NAB's boundary: NAB skips the first
    ``probationary_length(raw_rows)`` CSV rows, so scoring starts at the first unique timestamp
    at or after the timestamp of that CSV row.
    """
    path = Path(root) / name
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader)]
        try:
            t_col, v_col = header.index("timestamp"), header.index("value")
        except ValueError:
            raise ValueError(f"{path}: expected columns timestamp,value; got {header}") from None
        stamps: list[str] = []
        vals: list[float] = []
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            stamps.append(row[t_col])
            vals.append(float(row[v_col]))
    raw_ts = parse_timestamps(stamps)
    raw_vals = np.asarray(vals, dtype=np.float64)
    raw_rows = int(raw_ts.shape[0])

    out_of_order = int(np.count_nonzero(np.diff(raw_ts) <= 0)) if raw_rows > 1 else 0
    uniq, inverse, counts = np.unique(raw_ts, return_inverse=True, return_counts=True)
    merged = np.bincount(inverse, weights=raw_vals, minlength=uniq.shape[0]) / counts

    p_raw = probationary_length(raw_rows)
    if p_raw >= raw_rows:
        probation = int(uniq.shape[0])
    else:
        probation = int(np.searchsorted(uniq, raw_ts[p_raw], side="left"))

    category = name.split("/", 1)[0] if "/" in name else ""
    return NabFile(
        name=name,
        category=category,
        timestamps=uniq.astype(np.float64),
        values=merged.astype(np.float64),
        windows=_parse_windows(windows),
        raw_rows=raw_rows,
        duplicate_rows=raw_rows - int(uniq.shape[0]),
        out_of_order_rows=out_of_order,
        probation_rows=probation,
    )


def load_corpus(root: Path | None = None, categories: Iterable[str] | None = None) -> list[NabFile]:
    """Every file named in ``labels_windows.json`` (optionally only some categories), by name."""
    root = Path(root) if root is not None else default_corpus_dir()
    labels_path = root / LABELS_FILE
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"NAB corpus not found: {labels_path} does not exist (expected the NAB data folder "
            f"{root} with {LABELS_FILE} and <category>/<file>.csv; set MARKETPULSE_NAB_DIR "
            "to point elsewhere)"
        )
    with labels_path.open() as fh:
        labels: dict[str, list[list[str]]] = json.load(fh)
    wanted = set(categories) if categories is not None else None
    files = []
    for name in sorted(labels):
        if wanted is not None and name.split("/", 1)[0] not in wanted:
            continue
        if not (root / name).is_file():
            raise FileNotFoundError(f"NAB corpus at {root}: {name} is listed in {LABELS_FILE} but missing")
        files.append(load_file(root, name, labels[name]))
    return files


# --------------------------------------------------------------------------- scoring


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``2 / (1 + exp(5x)) - 1``, -1 from x >= 3 on."""
    x = np.asarray(x, dtype=np.float64)
    capped = np.minimum(x, 3.0)  # exp(5 * 3) is far from overflow
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * capped)) - 1.0)


_MAX_TP = float(scaled_sigmoid(-1.0))  # reward of an alert on a window's first row, before scaling


def _window_rows(f: NabFile) -> tuple[list[tuple[int, int]], int]:
    """Row ranges of the windows that contain at least one row, and how many had none."""
    ts = f.timestamps
    ranges = []
    empty = 0
    for s, e in sorted(f.windows):
        a = int(np.searchsorted(ts, s, side="left"))
        b = int(np.searchsorted(ts, e, side="right")) - 1
        if a > b:
            empty += 1  # NAB only knows windows whose edges are rows of the file
            continue
        if ranges and a <= ranges[-1][1]:
            raise ValueError(f"{f.name}: labelled windows overlap")
        ranges.append((a, b))
    return ranges, empty


def _sweep_scores(n: int, ranges: list[tuple[int, int]], cost: CostMatrix) -> np.ndarray:
    """What an alert on each row would score, ignoring the probationary period."""
    idx = np.arange(n, dtype=np.float64)
    scores = np.empty(n, dtype=np.float64)
    # Outside windows: distance past the last window that ended before the row.
    scores[:] = -cost.fp
    for k, (a, b) in enumerate(ranges):
        stop = ranges[k + 1][0] if k + 1 < len(ranges) else n
        if b + 1 >= stop:
            continue
        width = b - a + 1
        if width > 1:
            pos = (idx[b + 1 : stop] - b) / (width - 1)
        else:
            pos = np.full(stop - b - 1, 2.0)  # NAB divides by zero here; older NAB used 2.0
        scores[b + 1 : stop] = cost.fp * scaled_sigmoid(pos)
    # Inside windows: relative position, -1 on the first row.
    for a, b in ranges:
        width = b - a + 1
        pos = -(b - idx[a : b + 1] + 1) / width
        scores[a : b + 1] = cost.tp * scaled_sigmoid(pos) / _MAX_TP
    return scores


def score_file(f: NabFile, alerts: np.ndarray, profile: str | CostMatrix = "standard") -> FileScore:
    """Score one file; ``alerts`` is a bool array aligned with ``f.timestamps``."""
    profile_name, cost = _profile(profile)
    n = f.n
    det = np.asarray(alerts)
    if det.shape != (n,):
        raise ValueError(f"{f.name}: alerts has shape {det.shape}, expected ({n},)")
    det = det.astype(bool)
    ranges, empty = _window_rows(f)
    p = f.probation
    sweep = _sweep_scores(n, ranges, cost)

    scored = np.zeros(n, dtype=bool)
    scored[p:] = True
    in_window = np.zeros(n, dtype=bool)
    for a, b in ranges:
        in_window[a : b + 1] = True
    hits = det & scored

    contributions = np.zeros(n, dtype=np.float64)
    fp_mask = hits & ~in_window
    contributions[fp_mask] = sweep[fp_mask]

    window_rows, window_scores, delay_rows, delay_seconds = [], [], [], []
    unscored = empty
    tp = fn = 0
    tp_score = 0.0
    for a, b in ranges:
        if b < p:
            unscored += 1  # NAB never sees a window that ends inside the probationary period
            continue
        window_rows.append((a, b))
        first_scored = max(a, p)
        found = np.flatnonzero(hits[first_scored : b + 1])
        if found.size:
            i = first_scored + int(found[0])
            reward = float(sweep[i])  # rewards fall along the window: the first is the best
            tp += 1
            tp_score += reward
            contributions[i] += reward
            window_scores.append(reward)
            delay_rows.append(i - a)
            delay_seconds.append(float(f.timestamps[i] - f.timestamps[a]))
        else:
            fn += 1
            contributions[first_scored] += -cost.fn
            window_scores.append(-cost.fn)
            delay_rows.append(None)
            delay_seconds.append(None)

    fp_score = float(sweep[fp_mask].sum())
    fn_score = -cost.fn * fn
    scored_in_window = in_window & scored
    scored_days = float(f.timestamps[-1] - f.timestamps[p]) / SECONDS_PER_DAY if p < n else 0.0
    return FileScore(
        name=f.name,
        profile=profile_name,
        raw=tp_score + fp_score + fn_score,
        tp=tp,
        fn=fn,
        fp=int(fp_mask.sum()),
        windows=len(window_rows),
        unscored_windows=unscored,
        tp_score=tp_score,
        fp_score=fp_score,
        fn_score=fn_score,
        rows_tp=int((hits & in_window).sum()),
        rows_fp=int(fp_mask.sum()),
        rows_fn=int((scored_in_window & ~det).sum()),
        rows_tn=int((scored & ~in_window & ~det).sum()),
        scored_rows=int(scored.sum()),
        probation_rows=p,
        scored_days=scored_days,
        window_rows=tuple(window_rows),
        window_scores=tuple(window_scores),
        delay_rows=tuple(delay_rows),
        delay_seconds=tuple(delay_seconds),
        contributions=contributions,
        sweep_scores=sweep,
    )


def null_score(f: NabFile, profile: str | CostMatrix = "standard") -> float:
    """Raw score of a detector that never alerts: -A_FN per scored window."""
    return score_file(f, np.zeros(f.n, dtype=bool), profile).raw


def perfect_score(f: NabFile, profile: str | CostMatrix = "standard") -> float:
    """NAB's best possible raw score: A_TP per labelled window.

    That is what alerting on every window's first row earns, as long as no window starts inside
    the probationary period (NAB still counts such windows here).
    """
    _, cost = _profile(profile)
    return cost.tp * len(f.windows)


def _normalize(raw: float, null: float, perfect: float) -> float | None:
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


def _group(
    name: str, scores: Sequence[FileScore], nulls: Sequence[float], perfects: Sequence[float]
) -> GroupScore:
    raw = float(sum(s.raw for s in scores))
    null = float(sum(nulls))
    perfect = float(sum(perfects))
    days = float(sum(s.scored_days for s in scores))
    fp = sum(s.fp for s in scores)
    return GroupScore(
        name=name,
        files=len(scores),
        windows=sum(s.windows for s in scores),
        tp=sum(s.tp for s in scores),
        fn=sum(s.fn for s in scores),
        fp=fp,
        raw=raw,
        null=null,
        perfect=perfect,
        normalized=_normalize(raw, null, perfect),
        scored_days=days,
        false_alerts_per_day=fp / days if days > 0 else None,
    )


def score_corpus(
    files: Sequence[NabFile],
    alerts_by_name: Mapping[str, np.ndarray],
    profile: str | CostMatrix = "standard",
) -> CorpusScore:
    """Score a detector over ``files``; ``alerts_by_name`` needs one alert array per file."""
    profile_name, cost = _profile(profile)
    names = [f.name for f in files]
    missing = [n for n in names if n not in alerts_by_name]
    if missing:
        raise KeyError(f"no alerts given for {len(missing)} file(s), e.g. {missing[:3]}")
    unknown = sorted(set(alerts_by_name) - set(names))
    if unknown:
        raise KeyError(f"alerts given for {len(unknown)} file(s) not in the corpus, e.g. {unknown[:3]}")

    per_file: dict[str, FileScore] = {}
    nulls: dict[str, float] = {}
    perfects: dict[str, float] = {}
    for f in files:
        per_file[f.name] = score_file(f, alerts_by_name[f.name], profile)
        nulls[f.name] = null_score(f, cost)
        perfects[f.name] = perfect_score(f, cost)

    by_category: dict[str, list[str]] = {}
    for f in files:
        by_category.setdefault(f.category, []).append(f.name)

    def group(name: str, members: list[str]) -> GroupScore:
        return _group(
            name,
            [per_file[m] for m in members],
            [nulls[m] for m in members],
            [perfects[m] for m in members],
        )

    return CorpusScore(
        profile=profile_name,
        overall=group("all", names),
        categories={c: group(c, members) for c, members in sorted(by_category.items())},
        files=per_file,
    )


def alerts_at(f: NabFile, alert_timestamps: Iterable[Any], *, strict: bool = True) -> np.ndarray:
    """Bool array over ``f.timestamps`` marking the given alert times.

    Alert times are matched exactly (to the microsecond).  With ``strict=False`` an alert between
    two rows marks the next row (the first one a streaming detector could have raised it on) and
    alerts after the last row are dropped; with ``strict=True`` such alerts raise ValueError.
    """
    ts = f.timestamps
    marks = np.zeros(f.n, dtype=bool)
    when = parse_timestamps(alert_timestamps)
    if when.size == 0:
        return marks
    pos = np.searchsorted(ts, when - 1e-6, side="left")
    inside = pos < f.n
    exact = np.zeros(when.shape, dtype=bool)
    exact[inside] = np.abs(ts[pos[inside]] - when[inside]) <= 1e-6
    if strict and not exact.all():
        bad = when[~exact]
        raise ValueError(
            f"{f.name}: {bad.size} alert time(s) are not rows of the file, first "
            f"{np.datetime64(int(round(bad[0] * 1e6)), 'us')}; pass strict=False to snap them"
        )
    marks[pos[inside]] = True
    return marks
