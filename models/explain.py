"""Word-level explanations for negative predictions by occlusion.

For a text with words w1..wn, the n variants that each drop one word are scored in one batch; a
word's importance is how much the negative-class probability falls without it. Cost: one extra
forward pass over n short texts per explained text (measured in bench/bench_models.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

MAX_WORDS = 64  # longer texts: only the first 64 words are candidates (tweets rarely exceed this)


def occlusion_variants(text: str, max_words: int = MAX_WORDS) -> tuple[list[str], list[str]]:
    """(words, texts with one word removed each)."""
    words = text.split()[:max_words]
    all_words = text.split()
    variants = [" ".join(all_words[:i] + all_words[i + 1 :]) for i in range(len(words))]
    return words, variants


def explain_negative(
    texts: list[str],
    base_negative_probs: np.ndarray,
    sentiment_probs_fn: Callable[[list[str]], np.ndarray],
    negative_index: int,
    top_k: int = 5,
) -> list[list[str]]:
    """For each text, up to ``top_k`` words whose removal lowers P(negative) the most (only words
    that do lower it), best first. All variants of all texts go through one batched call."""
    per_text, flat = [], []
    for t in texts:
        words, variants = occlusion_variants(t)
        # Dropping the only word would leave an empty text; nothing to compare against then.
        if len(words) < 2:
            variants = []
        per_text.append((words, len(flat), len(variants)))
        flat.extend(variants)
    probs = sentiment_probs_fn(flat)[:, negative_index] if flat else np.zeros(0)
    out = []
    for (words, start, n), base in zip(per_text, base_negative_probs):
        if n == 0:
            out.append(list(words))
            continue
        drop = base - probs[start : start + n]
        order = np.argsort(-drop, kind="stable")
        out.append([words[i] for i in order[:top_k] if drop[i] > 0])
    return out
