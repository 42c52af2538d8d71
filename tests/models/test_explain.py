"""Occlusion explanations, against a scoring function whose answer is known."""
from __future__ import annotations

import numpy as np

from models.explain import explain_negative, occlusion_variants

NEG_WORDS = {"plunge": 0.5, "fraud": 0.3, "lawsuit": 0.1}


def fake_sentiment_probs(texts):
    """P(negative) = 0.05 + the weights of the negative words present."""
    neg = np.array([0.05 + sum(w for word, w in NEG_WORDS.items() if word in t.split()) for t in texts])
    return np.stack([neg, (1 - neg) / 2, (1 - neg) / 2], axis=1)


def test_variants_drop_one_word_each():
    words, variants = occlusion_variants("a b c")
    assert words == ["a", "b", "c"]
    assert variants == ["b c", "a c", "a b"]


def test_words_ranked_by_drop_in_negative_probability():
    texts = ["shares plunge after fraud and lawsuit news", "calm day"]
    base = fake_sentiment_probs(texts)[:, 0]
    calls = []

    def fn(v):
        calls.append(len(v))
        return fake_sentiment_probs(v)

    out = explain_negative(texts, base, fn, negative_index=0, top_k=5)
    assert out[0] == ["plunge", "fraud", "lawsuit"]  # only words that lower P(negative), best first
    assert out[1] == []
    assert calls == [7 + 2]  # every variant of every text in one batched call


def test_top_k_limits_the_list():
    texts = ["plunge fraud lawsuit"]
    out = explain_negative(texts, fake_sentiment_probs(texts)[:, 0], fake_sentiment_probs, 0, top_k=2)
    assert out == [["plunge", "fraud"]]
