"""Training data: label maps, stratified test and dev splits, class weights, batching."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models.data import (
    IGNORE,
    SENTIMENT_LABELS,
    build_label_maps,
    class_weights,
    length_grouped_batches,
    load_splits,
    pad_batch,
    stratified_split,
    three_way_split,
)


def _labels():
    # 3 classes with very different sizes, including a tiny one
    return ["a"] * 700 + ["b"] * 250 + ["c"] * 47 + ["d"] * 3


def test_split_is_a_partition_of_all_rows():
    labels = _labels()
    train, dev = stratified_split(labels, 0.1, seed=7)
    assert sorted(train + dev) == list(range(len(labels)))
    assert not set(train) & set(dev)


def test_split_keeps_each_class_share_in_dev():
    labels = _labels()
    _, dev = stratified_split(labels, 0.1, seed=7)
    dev_counts = Counter(labels[i] for i in dev)
    assert dev_counts["a"] == 70 and dev_counts["b"] == 25
    assert dev_counts["c"] in (4, 5)
    assert dev_counts["d"] == 1  # even a tiny class is represented in dev, and in train


def test_split_is_deterministic_per_seed_and_changes_with_seed():
    labels = _labels()
    assert stratified_split(labels, 0.1, 1) == stratified_split(labels, 0.1, 1)
    assert stratified_split(labels, 0.1, 1)[1] != stratified_split(labels, 0.1, 2)[1]


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError):
        stratified_split(["a", "b"], 1.0, 0)


def test_label_maps_fixed_sentiment_order_and_sorted_topics():
    maps = build_label_maps(["positive", "negative", "neutral"], ["Macro", "IPO", "Fed | Central Banks", "IPO"])
    assert maps.sentiment == SENTIMENT_LABELS == ("negative", "neutral", "positive")
    assert maps.topic == ("Fed | Central Banks", "IPO", "Macro")
    assert type(maps).from_json(maps.to_json()) == maps


def test_label_maps_reject_unknown_sentiment():
    with pytest.raises(ValueError, match="bullish"):
        build_label_maps(["bullish"], ["Macro"])


def test_load_splits_gives_each_example_exactly_one_task(tmp_path):
    (tmp_path / "sentiment_train.csv").write_text(
        "text,label\n" + "".join(f"s{i},{lab}\n" for i, lab in enumerate(["negative", "neutral", "positive"] * 10))
    )
    (tmp_path / "topic_train.csv").write_text(
        "text,label\n" + "".join(f"t{i},\"{lab}\"\n" for i, lab in enumerate(["Macro", "IPO | New"] * 10))
    )
    sp = load_splits(tmp_path, 0.2, seed=3)
    assert sp.labels.topic == ("IPO | New", "Macro")
    assert len(sp.train) + len(sp.dev_sentiment) + len(sp.dev_topic) == 50
    for e in sp.train:
        assert (e.sentiment == IGNORE) != (e.topic == IGNORE)
        assert e.text[0] == ("s" if e.sentiment != IGNORE else "t")
    assert all(e.topic == IGNORE for e in sp.dev_sentiment)
    assert all(e.sentiment == IGNORE for e in sp.dev_topic)
    assert not {e.text for e in sp.train} & {e.text for e in sp.dev_sentiment + sp.dev_topic}


def test_class_weights_favour_rare_classes_and_average_one():
    w = class_weights([0] * 90 + [1] * 10 + [IGNORE] * 50, 2, power=0.5)
    assert w[1] > w[0]
    assert w.mean() == pytest.approx(1.0)
    assert w[1] / w[0] == pytest.approx(3.0)  # sqrt(90/10)


def test_length_grouped_batches_cover_every_row_once():
    lengths = list(np.random.default_rng(0).integers(3, 90, size=1000))
    batches = length_grouped_batches(lengths, 32, seed=1, group=5)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    # grouping by length: padding waste far below that of random batches
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste < 0.2 * sum(lengths)


def test_pad_batch_pads_to_longest_row():
    ids, mask = pad_batch([[101, 5, 102], [101, 102]])
    assert ids.tolist() == [[101, 5, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_three_way_split_is_a_stratified_partition_with_both_fractions_of_the_whole():
    labels = _labels()
    train, dev, test = three_way_split(labels, 0.1, 0.1, seed=7)
    assert sorted(train + dev + test) == list(range(len(labels)))
    assert not set(train) & set(dev) and not set(train) & set(test) and not set(dev) & set(test)
    for part in (dev, test):
        counts = Counter(labels[i] for i in part)
        assert counts["a"] == 70 and counts["b"] == 25 and counts["c"] in (4, 5) and counts["d"] == 1


def test_without_a_test_fraction_the_dev_split_is_the_one_older_artifacts_were_trained_with():
    labels = _labels()
    train, dev, test = three_way_split(labels, 0.1, 0.0, seed=7)
    assert (train, dev) == stratified_split(labels, 0.1, seed=7) and test == []


def test_three_way_split_refuses_fractions_that_leave_nothing_to_train_on():
    with pytest.raises(ValueError, match="below 1"):
        three_way_split(_labels(), 0.5, 0.5, seed=7)


def test_load_splits_holds_out_test_rows_of_both_tasks(tmp_path):
    (tmp_path / "sentiment_train.csv").write_text(
        "text,label\n" + "".join(f"s{i},{SENTIMENT_LABELS[i % 3]}\n" for i in range(60)))
    (tmp_path / "topic_train.csv").write_text("text,label\n" + "".join(f"t{i},T{i % 2}\n" for i in range(40)))
    sp = load_splits(tmp_path, 0.1, seed=3, test_fraction=0.2)
    assert (len(sp.test_sentiment), len(sp.test_topic)) == (12, 8)
    assert (len(sp.dev_sentiment), len(sp.dev_topic)) == (6, 4)
    texts = lambda rows: {e.text for e in rows}  # noqa: E731
    held_out = texts(sp.test_sentiment + sp.test_topic)
    assert not held_out & texts(sp.train) and not held_out & texts(sp.dev_sentiment + sp.dev_topic)
    assert len(sp.train) == 100 - 12 - 8 - 6 - 4


def test_with_clean_text_the_same_rows_hold_the_texts_the_worker_would_classify(tmp_path):
    from models.io import model_input

    url = "https://t.co/AbCdEf1234"
    (tmp_path / "sentiment_train.csv").write_text(
        "text,label\n" + "".join(f"s{i} &amp; down {url},{['negative', 'neutral', 'positive'][i % 3]}\n"
                                 for i in range(29)) + f"{url},neutral\n")
    (tmp_path / "topic_train.csv").write_text("text,label\n" + "".join(f"<b>t{i}</b> {url},T{i % 2}\n" for i in range(40)))
    raw = load_splits(tmp_path, 0.2, seed=3, test_fraction=0.2)
    clean = load_splits(tmp_path, 0.2, seed=3, test_fraction=0.2, clean_text=True)
    for part in ("train", "dev_sentiment", "dev_topic", "test_sentiment", "test_topic"):
        # a text that is only a URL is dropped, as the worker dead-letters it; every other row stays
        kept = [e for e in getattr(raw, part) if model_input(e.text)]
        assert [(model_input(e.text), e.sentiment, e.topic) for e in kept] == \
               [(e.text, e.sentiment, e.topic) for e in getattr(clean, part)]
    assert all("http" not in e.text and "<b>" not in e.text for e in clean.train)

    def sentiment_rows(sp):
        return sum(e.sentiment >= 0 for e in sp.train) + len(sp.dev_sentiment) + len(sp.test_sentiment)

    assert (sentiment_rows(raw), sentiment_rows(clean)) == (30, 29)
