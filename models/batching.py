"""tokenize -> length-sorted, dynamically padded batches -> results back in input order."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from models.data import pad_batch


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """One call into the Rust tokenizer for the whole list; no padding here (done per batch)."""
    return tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]


def sorted_batches(token_ids: list[list[int]], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(original indices, input_ids, attention_mask) per batch, rows of similar length together so a
    batch pads to little more than its own longest row."""
    order = np.argsort([len(t) for t in token_ids], kind="stable")
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        ids, mask = pad_batch([token_ids[i] for i in idx])
        yield idx, ids, mask


def run_batched(
    fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    token_ids: list[list[int]],
    batch_size: int,
) -> tuple[np.ndarray, ...]:
    """Apply ``fn(input_ids, attention_mask) -> arrays with one row per input`` over sorted batches
    and scatter the rows back to input order."""
    outs: list[np.ndarray] | None = None
    for idx, ids, mask in sorted_batches(token_ids, batch_size):
        res = fn(ids, mask)
        if outs is None:
            outs = [np.empty((len(token_ids),) + r.shape[1:], dtype=np.float32) for r in res]
        for o, r in zip(outs, res):
            o[idx] = r
    if outs is None:
        raise ValueError("no texts to run")
    return tuple(outs)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
