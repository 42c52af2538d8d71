"""cProfile in every thread of a process, snapshots on request, and where the time went by category.

    python -m bench.profiled DIR MODULE [ARGS...]     # e.g. DIR marketpulse.cli worker --config FILE

runs ``python -m MODULE ARGS`` with a profiler in the main thread and in every thread started after
it. ``python -m cProfile`` sees the main thread only, and the stream worker classifies in a thread of
its own (stream/app.py). While it runs, a file ``DIR/<name>.request`` makes it write the statistics
of all threads so far to ``DIR/<name>.pstats`` (marshal, as ``pstats`` reads it). bench.bench_e2e
takes one snapshot before the measured backlog and one after and keeps the difference
(``diff_stats``), so start-up (imports, loading the model, joining the group) is not in it. Nothing
in the worker itself changes; only the benchmark starts it this way.

Times are wall-clock per thread (cProfile's default timer): a thread blocked in ``epoll``, on a lock
or on the executor's queue accrues time there, counted as ``idle``. ``breakdown`` sorts the self
time (tottime) of every function into categories by where the function lives; helpers that belong
to no stage (builtins such as ``len``, ``re``, numpy, typing, dataclasses) are charged to the
category of their callers, in proportion to the time spent under each caller, up to
``CALLER_DEPTH`` levels up.
"""
from __future__ import annotations

import cProfile
import marshal
import os
import runpy
import sys
import threading
import time
from pathlib import Path

Func = tuple[str, int, str]  # (file, line, name), as pstats keys functions
ROOT = str(Path(__file__).resolve().parent.parent).replace("\\", "/")
CALLER_DEPTH = 6

IDLE = "idle (waiting for records, the broker or the model thread)"
CATEGORIES = (
    "tokenization",
    "model run (onnxruntime)",
    "model pre/post-processing (padding, softmax, predictions)",
    "enrichment (cleaning, privacy, tickers, novelty)",
    "validation, schemas (pydantic)",
    "JSON encode/decode",
    "faust, aiokafka, asyncio (consume, produce, commit)",
    "metrics, logging",
    "other",
)
(TOKENIZE, MODEL_RUN, MODEL_PREPOST, ENRICH, VALIDATE, JSON_CODEC, FAUST, METRICS, OTHER) = CATEGORIES

# Builtins (file "~") that block: the time is waiting, not work.
_IDLE_BUILTINS = ("'select.epoll'", "'select.poll'", "'select.kqueue'", "built-in method select.select",
                  "'_thread.lock'", "'_thread.RLock'", "'_queue.SimpleQueue'", "built-in method time.sleep")
# (substring of a builtin's name, category), first match wins.
_BUILTIN_RULES = (
    ("to_json", JSON_CODEC),  # pydantic_core serializing straight to JSON (model_dump_json)
    ("_json", JSON_CODEC),
    ("tokenizers.", TOKENIZE),
    ("onnxruntime", MODEL_RUN),
    ("pydantic_core", VALIDATE),
    ("aiokafka", FAUST), ("_asyncio", FAUST), ("_socket", FAUST), ("_ssl", FAUST), ("crc32", FAUST),
    ("_lz4", FAUST), ("zlib", FAUST),
)
# (substring of a file path, category), first match wins; project paths first.
_FILE_RULES = (
    ("/models/tokenizer.py", TOKENIZE),
    ("/models/backends/", MODEL_RUN),
    ("/onnxruntime/", MODEL_RUN),
    ("/tokenizers/", TOKENIZE),
    ("/models/", MODEL_PREPOST),
    ("/stream/enrich/", ENRICH), ("/marketpulse/text.py", ENRICH),
    ("/stream/validate.py", VALIDATE), ("/marketpulse/schemas.py", VALIDATE),
    ("/pydantic/", VALIDATE), ("/pydantic_core/", VALIDATE),
    ("/marketpulse/wire.py", JSON_CODEC), ("/json/", JSON_CODEC),
    ("/stream/app.py", FAUST), ("/faust/", FAUST), ("/mode/", FAUST), ("/aiokafka/", FAUST), ("/kafka/", FAUST),
    ("/asyncio/", FAUST), ("/selectors.py", FAUST), ("/socket.py", FAUST), ("/ssl.py", FAUST),
    ("/concurrent/futures/", FAUST), ("/croniter/", FAUST), ("/venusian/", FAUST), ("/yarl/", FAUST),
    ("/prometheus_client/", METRICS), ("/marketpulse/metrics.py", METRICS), ("/logging/", METRICS),
    ("/stream/processor.py", OTHER), ("/marketpulse/", OTHER),
)


def own_category(func: Func) -> str | None:
    """The category a function's own time belongs to; None for a generic helper (charged to callers)."""
    file, _, name = func
    if file == "~":
        if any(s in name for s in _IDLE_BUILTINS):
            return IDLE
        return next((cat for s, cat in _BUILTIN_RULES if s in name), None)
    path = file.replace("\\", "/")
    return next((cat for s, cat in _FILE_RULES if s in path), None)


# -- statistics ---------------------------------------------------------------------------------------

def _add(a: tuple, b: tuple, sign: int = 1) -> tuple:
    return tuple(x + sign * y for x, y in zip(a, b))


def merge_stats(*stats: dict) -> dict:
    """pstats dicts (func -> (cc, nc, tt, ct, callers)) summed, e.g. the profiles of several threads."""
    out: dict = {}
    for st in stats:
        for func, (cc, nc, tt, ct, callers) in st.items():
            if func in out:
                occ, onc, ott, oct_, ocallers = out[func]
                merged = dict(ocallers)
                for c, v in callers.items():
                    merged[c] = _add(merged[c], v) if c in merged else tuple(v)
                out[func] = (occ + cc, onc + nc, ott + tt, oct_ + ct, merged)
            else:
                out[func] = (cc, nc, tt, ct, {c: tuple(v) for c, v in callers.items()})
    return out


def diff_stats(before: dict, after: dict) -> dict:
    """What happened between two snapshots of the same profiles: ``after`` minus ``before``, functions
    (and callers) not called in between left out."""
    out: dict = {}
    for func, (cc, nc, tt, ct, callers) in after.items():
        if func in before:
            bcc, bnc, btt, bct, bcallers = before[func]
            cc, nc, tt, ct = cc - bcc, nc - bnc, tt - btt, ct - bct
            callers = {c: _add(v, bcallers[c], -1) if c in bcallers else tuple(v) for c, v in callers.items()}
        callers = {c: v for c, v in callers.items() if v[0] > 0}
        if nc > 0:
            out[func] = (cc, nc, max(tt, 0.0), max(ct, 0.0), callers)
    return out


def breakdown(stats: dict, depth: int = CALLER_DEPTH) -> dict[str, float]:
    """Self time per category (seconds, all threads together), ``IDLE`` included."""
    out: dict[str, float] = {}

    def charge(func: Func, seconds: float, level: int) -> None:
        cat = own_category(func)
        if cat is None:
            callers = stats.get(func, (0, 0, 0.0, 0.0, {}))[4]
            # The time each caller accounts for in this function (pstats keeps tt per caller).
            weights = {c: v[2] for c, v in callers.items() if v[2] > 0 and c != func}
            total = sum(weights.values())
            if level < depth and total > 0:
                for c, w in weights.items():
                    charge(c, seconds * w / total, level + 1)
                return
            cat = OTHER
        out[cat] = out.get(cat, 0.0) + seconds

    for func, (_, _, tt, _, _) in stats.items():
        if tt > 0:
            charge(func, tt, 0)
    return out


def _in_project(file: str) -> bool:
    path = file.replace("\\", "/")
    return path.startswith(ROOT + "/") and "/.venv/" not in path and "site-packages" not in path


def label(func: Func) -> str:
    """``stream/processor.py:54(process)``, ``faust/streams.py:...``, or a builtin's own name."""
    file, line, name = func
    if file == "~":
        return name
    path = file.replace("\\", "/")
    if _in_project(path):
        short = path[len(ROOT) + 1:]
    elif "site-packages/" in path:
        short = path.split("site-packages/", 1)[1]
    else:  # the standard library: its package and module
        short = "/".join(path.split("/")[-2:])
    return f"{short}:{line}({name})"


def top_functions(stats: dict, key: str = "tt", n: int = 15, project_only: bool = False) -> list[dict]:
    """The ``n`` functions with the most self (``tt``) or cumulative (``ct``) time, idle ones left out;
    ``project_only``: functions of this repository only (their cumulative time is the call tree)."""
    index = {"tt": 2, "ct": 3}[key]
    rows = []
    for func, st in stats.items():
        if own_category(func) == IDLE:
            continue
        if project_only and not _in_project(func[0]):
            continue
        rows.append((st[index], func, st))
    rows.sort(key=lambda r: r[0], reverse=True)
    return [{"function": label(f), "category": own_category(f) or "(charged to callers)", "calls": st[1],
             "self_s": round(st[2], 3), "cumulative_s": round(st[3], 3)} for _, f, st in rows[:n]]


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        return marshal.load(f)


# -- launcher -----------------------------------------------------------------------------------------

class ThreadProfiles:
    """One cProfile profiler per thread: the caller's, and each thread started after ``install``."""

    def __init__(self) -> None:
        self._profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_here(self) -> None:
        p = cProfile.Profile()
        with self._lock:
            self._profiles.append(p)
        p.enable()

    def _first_event(self, frame, event, arg) -> None:
        # threading.setprofile calls this at a new thread's first event; enable() then replaces it
        # with the thread's own profiler.
        self._start_here()

    def install(self) -> None:
        threading.setprofile(self._first_event)
        self._start_here()

    def snapshot(self) -> dict:
        """All threads' statistics so far. getstats() only reads the profiler, so it may be called from
        another thread; calls still on a thread's stack count once they return."""
        with self._lock:
            profiles = list(self._profiles)
        stats = []
        for p in profiles:
            p.snapshot_stats()
            stats.append(p.stats)
        return merge_stats(*stats)


def _serve_requests(directory: Path, profiles: ThreadProfiles, interval: float = 0.05) -> None:
    while True:
        for req in sorted(directory.glob("*.request")):
            out = req.with_suffix(".pstats")
            tmp = out.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                marshal.dump(profiles.snapshot(), f)
            os.replace(tmp, out)
            req.unlink(missing_ok=True)
        time.sleep(interval)


def request_snapshot(directory: Path, name: str, timeout: float = 60.0) -> dict:
    """Asks a process started by ``main`` for its statistics so far, and returns them."""
    out = directory / f"{name}.pstats"
    out.unlink(missing_ok=True)
    (directory / f"{name}.request").touch()
    deadline = time.monotonic() + timeout
    while not out.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no profile snapshot {out} after {timeout:.0f} s")
        time.sleep(0.05)
    return load(out)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m bench.profiled DIR MODULE [ARGS...]")
    directory, module, args = Path(argv[0]), argv[1], argv[2:]
    directory.mkdir(parents=True, exist_ok=True)
    profiles = ThreadProfiles()
    # Started before install(): the thread answering requests is not profiled itself.
    threading.Thread(target=_serve_requests, args=(directory, profiles), name="profile-snapshots",
                     daemon=True).start()
    sys.argv = [module, *args]
    profiles.install()
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
