"""Word-level explanations by occlusion: the words whose removal lowers the probability of a class
the most.

For a text with words w1..wn (``str.split``), the variants that each drop one word are scored in one
batched call; a word's weight is how much P(class) falls without it. Cost: about n forward passes of
the text's length per explained text, ~11x classifying it (bench/bench_explain.py), which is why the
stream worker classifies only unless ``model.explain_negative`` is on.

Two methods:

* ``occlusion`` (the default): every word is dropped in turn (the first ``MAX_WORDS``).
* ``screened``: in a text of more than ``SCREEN_WORDS`` words, each word is first scored alone (one
  pass over one-word texts, a few tokens each) and only the ``SCREEN_WORDS`` words that score the
  class highest on their own are dropped; shorter texts are occluded in full. On the dev split
  (bench/results/explain-vm.json, onnx-int8) it was 1.6x faster than occlusion, but its top 3 words
  overlapped occlusion's by 0.71 on average, below the 0.8 required, so it is not the default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

MAX_WORDS = 64  # longer texts: only the first 64 words are candidates (tweets rarely exceed this)
SCREEN_WORDS = 8
METHODS = ("occlusion", "screened")
DEFAULT_METHOD = "occlusion"

# texts -> (n, classes) probabilities
ProbsFn = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Attribution:
    """One text explained: its words, and those whose removal lowers P(class), with by how much
    (``(word index, drop)``, largest drop first; words that do not lower it are left out)."""

    words: tuple[str, ...]
    ranked: tuple[tuple[int, float], ...]

    def top(self, k: int = 5) -> list[str]:
        """Up to ``k`` words, best first."""
        return [self.words[i] for i, _ in self.ranked[:k]]

    def weights(self, k: int = 5) -> list[float]:
        """Their drops in P(class), same order as ``top(k)``."""
        return [round(w, 6) for _, w in self.ranked[:k]]


def occlusion_variants(text: str, max_words: int = MAX_WORDS) -> tuple[list[str], list[str]]:
    """(words, texts with one word removed each)."""
    words = text.split()[:max_words]
    all_words = text.split()
    variants = [" ".join(all_words[:i] + all_words[i + 1 :]) for i in range(len(words))]
    return words, variants


def attribute(
    texts: Sequence[str],
    classes: Sequence[int],
    base_probs: Sequence[float],
    probs_fn: ProbsFn,
    method: str = DEFAULT_METHOD,
    screen_words: int = SCREEN_WORDS,
) -> list[Attribution]:
    """Explain ``texts[i]`` for class ``classes[i]``, whose probability for the whole text is
    ``base_probs[i]``. All variants of all texts go through one call of ``probs_fn`` (the screened
    method makes one more, over the single words)."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose from {', '.join(METHODS)}")
    if screen_words < 1:
        raise ValueError("screen_words must be >= 1")
    words = [t.split() for t in texts]
    # Dropping the only word would leave an empty text: nothing to compare against then.
    cand = [list(range(min(len(w), MAX_WORDS))) if len(w) >= 2 else [] for w in words]
    if method == "screened":
        cand = _screen(words, cand, classes, probs_fn, screen_words)
    flat = [" ".join(w[:i] + w[i + 1 :]) for w, c in zip(words, cand) for i in c]
    probs = probs_fn(flat) if flat else np.zeros((0, 1))
    out, pos = [], 0
    for w, c, cls, base in zip(words, cand, classes, base_probs):
        if len(w) < 2:
            # A one-word text is explained by that word, which carries the class on its own.
            out.append(Attribution(tuple(w), tuple((i, float(base)) for i in range(len(w)))))
            continue
        drop = float(base) - probs[pos : pos + len(c), int(cls)]
        pos += len(c)
        order = np.argsort(-drop, kind="stable")  # ties: the earlier word first
        out.append(Attribution(tuple(w), tuple((c[j], float(drop[j])) for j in order if drop[j] > 0)))
    return out


def _screen(words: list[list[str]], cand: list[list[int]], classes: Sequence[int], probs_fn: ProbsFn,
            n: int) -> list[list[int]]:
    """Candidates of the texts longer than ``n`` words cut to the ``n`` words that score the class
    highest on their own, in text order (so ties break as in full occlusion)."""
    long = [k for k, c in enumerate(cand) if len(c) > n]
    if not long:
        return cand
    probs = probs_fn([words[k][i] for k in long for i in cand[k]])
    out, pos = list(cand), 0
    for k in long:
        alone = probs[pos : pos + len(cand[k]), int(classes[k])]
        pos += len(cand[k])
        keep = np.argsort(-alone, kind="stable")[:n]
        out[k] = sorted(cand[k][j] for j in keep)
    return out


def explain_negative(
    texts: list[str],
    base_negative_probs: np.ndarray,
    sentiment_probs_fn: ProbsFn,
    negative_index: int,
    top_k: int = 5,
    method: str = DEFAULT_METHOD,
) -> list[list[str]]:
    """For each text, up to ``top_k`` words whose removal lowers P(negative) the most (only words
    that do lower it), best first."""
    found = attribute(texts, [negative_index] * len(texts), base_negative_probs, sentiment_probs_fn, method)
    return [a.top(top_k) for a in found]
