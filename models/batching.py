"""tokenize -> length-sorted, dynamically padded batches -> results back in input order."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Callable, Iterator

import numpy as np

from models.data import pad_batch


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """One call into the Rust tokenizer for the whole list; no padding here (done per batch)."""
    return tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]


def sorted_batches(token_ids: list[list[int]], batch_size: int,
                   max_tokens: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(original indices, input_ids, attention_mask) per forward pass, rows of similar length together
    so a pass pads to little more than its own longest row. A pass holds at most ``batch_size`` rows
    and, with ``max_tokens``, at most that many padded tokens (rows x longest row; one row always
    fits): on a CPU a pass whose activations stay in cache runs fastest, and a fixed row count
    overshoots that for long texts (bench/bench_model_steps.py measures it)."""
    lengths = [len(t) for t in token_ids]
    order = np.argsort(lengths, kind="stable")
    s = 0
    while s < len(order):
        e = min(len(order), s + batch_size)
        if max_tokens:
            # Ascending lengths: the row that would join is the pass's longest.
            stop = s + 1
            while stop < e and lengths[order[stop]] * (stop + 1 - s) <= max_tokens:
                stop += 1
            e = stop
        idx = order[s:e]
        ids, mask = pad_batch([token_ids[i] for i in idx])
        yield idx, ids, mask
        s = e


def run_batched(
    fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    token_ids: list[list[int]],
    batch_size: int,
    max_tokens: int | None = None,
    pool: ThreadPoolExecutor | None = None,
    in_flight: int = 8,
) -> tuple[np.ndarray, ...]:
    """Apply ``fn(input_ids, attention_mask) -> arrays with one row per input`` over sorted batches
    and scatter the rows back to input order. With ``pool``, passes run on its threads side by side
    (``in_flight`` at a time, the longest first, so the last to start is a short one)."""
    passes = sorted_batches(token_ids, batch_size, max_tokens)
    if pool is None:
        done = ((idx, fn(ids, mask)) for idx, ids, mask in passes)
    else:
        done = _side_by_side(fn, passes, pool, in_flight)
    outs: list[np.ndarray] | None = None
    for idx, res in done:
        if outs is None:
            outs = [np.empty((len(token_ids),) + r.shape[1:], dtype=np.float32) for r in res]
        for o, r in zip(outs, res):
            o[idx] = r
    if outs is None:
        raise ValueError("no texts to run")
    return tuple(outs)


def _side_by_side(fn, passes: Iterator, pool: ThreadPoolExecutor, window: int) -> Iterator:
    while chunk := list(islice(passes, window)):
        futures = [(idx, pool.submit(fn, ids, mask)) for idx, ids, mask in reversed(chunk)]
        yield from ((idx, f.result()) for idx, f in futures)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
