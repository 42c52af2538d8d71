"""Occlusion explanations (full and screened), against a scoring function whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from models.explain import Attribution, attribute, explain_negative, occlusion_variants

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


# -- attribute: any class, weights, and the screened method -----------------------------------------
POS_WORDS = {"beats": 0.6, "record": 0.2}


def fake_three_way_probs(texts):
    """P(negative) and P(positive) each rise with their own words; neutral takes the rest."""
    neg = np.array([0.05 + sum(w for word, w in NEG_WORDS.items() if word in t.split()) for t in texts])
    pos = np.array([0.05 + sum(w for word, w in POS_WORDS.items() if word in t.split()) for t in texts])
    return np.stack([neg, 1 - neg - pos, pos], axis=1)


def probs_counting(calls):
    def fn(v):
        calls.append(list(v))
        return fake_sentiment_probs(v)
    return fn


def test_attribute_gives_the_drop_of_each_word_best_first():
    texts = ["shares plunge after fraud and lawsuit news"]
    [a] = attribute(texts, [0], fake_sentiment_probs(texts)[:, 0], fake_sentiment_probs)
    assert a.words == tuple(texts[0].split())
    assert a.top(2) == ["plunge", "fraud"]
    assert a.weights(3) == pytest.approx([0.5, 0.3, 0.1])
    assert [a.words[i] for i, _ in a.ranked] == ["plunge", "fraud", "lawsuit"]


def test_each_text_is_explained_for_its_own_class_in_one_call():
    texts = ["Nike beats estimates with record sales", "shares plunge on fraud"]
    p = fake_three_way_probs(texts)
    calls = []

    def fn(v):
        calls.append(len(v))
        return fake_three_way_probs(v)

    pos, neg = attribute(texts, [2, 0], [p[0, 2], p[1, 0]], fn)
    assert pos.top() == ["beats", "record"] and neg.top() == ["plunge", "fraud"]
    assert calls == [6 + 4]
    # the same positive text, asked why it would be negative: no word raises P(negative)
    [why_negative] = attribute(texts[:1], [0], [p[0, 0]], fake_three_way_probs)
    assert why_negative.top() == []


def test_a_one_word_text_is_explained_by_its_word():
    [a] = attribute(["Crash"], [0], [0.9], fake_sentiment_probs)
    assert a.top() == ["Crash"] and a.weights() == [0.9]


def test_screened_leaves_short_texts_to_full_occlusion_with_the_same_answer():
    texts = ["shares plunge after fraud news"]  # 5 words <= screen_words
    base = fake_sentiment_probs(texts)[:, 0]
    calls = []
    full = attribute(texts, [0], base, fake_sentiment_probs)
    screened = attribute(texts, [0], base, probs_counting(calls), "screened", screen_words=5)
    assert screened == full
    assert len(calls) == 1 and len(calls[0]) == 5  # no screening pass: the variants only


def test_screened_occludes_only_the_words_that_score_highest_alone():
    words = "the market saw a plunge after the fraud and a lawsuit today".split()  # 12 words
    texts = [" ".join(words)]
    base = fake_sentiment_probs(texts)[:, 0]
    calls = []
    [a] = attribute(texts, [0], base, probs_counting(calls), "screened", screen_words=3)
    probe, variants = calls
    assert probe == words  # every word scored alone, in one call
    assert len(variants) == 3  # then only three variants instead of twelve
    assert a.top() == ["plunge", "fraud", "lawsuit"]
    full = attribute(texts, [0], base, fake_sentiment_probs)
    assert a.top(3) == full[0].top(3)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown explanation method"):
        attribute(["a b"], [0], [0.5], fake_sentiment_probs, "shap")


def test_attribution_top_and_weights_share_their_order():
    a = Attribution(("x", "y", "z"), ((2, 0.4), (0, 0.1)))
    assert a.top() == ["z", "x"] and a.weights() == [0.4, 0.1] and a.top(1) == ["z"]
