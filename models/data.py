"""Training data: the two labelled tweet files, label maps, stratified test and dev splits, batching.

The test split is carved first and only read by the final report: no training decision (early
stopping, int8, calibration) looks at it. The dev split chooses all of those.

Each example carries the label of exactly one task (sentiment or topic); the other is -100 so the
loss can mask it (see ``network.multitask_loss``).
"""
from __future__ import annotations

import csv
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
IGNORE = -100
SENTIMENT_FILE = "sentiment_train.csv"
TOPIC_FILE = "topic_train.csv"


@dataclass(frozen=True)
class LabelMaps:
    sentiment: tuple[str, ...]
    topic: tuple[str, ...]

    def to_json(self) -> dict:
        return {"sentiment": list(self.sentiment), "topic": list(self.topic)}

    @classmethod
    def from_json(cls, d: dict) -> "LabelMaps":
        return cls(tuple(d["sentiment"]), tuple(d["topic"]))


@dataclass
class Example:
    text: str
    sentiment: int = IGNORE
    topic: int = IGNORE


def read_labelled_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        return [(r["text"], r["label"].strip()) for r in reader if r["text"] and r["text"].strip()]


def build_label_maps(sentiment_labels: list[str], topic_labels: list[str]) -> LabelMaps:
    unknown = set(sentiment_labels) - set(SENTIMENT_LABELS)
    if unknown:
        raise ValueError(f"unknown sentiment label(s): {sorted(unknown)}")
    # Topic ids follow sorted names so the map is stable whatever the file order.
    return LabelMaps(SENTIMENT_LABELS, tuple(sorted(set(topic_labels))))


def stratified_split(labels: list[str], dev_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, dev): each class keeps its share in dev (at least one row per class with >= 2 rows)."""
    if not 0 < dev_fraction < 1:
        raise ValueError("dev_fraction must be in (0, 1)")
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(lab, []).append(i)
    train, dev = [], []
    for lab in sorted(by_class):
        idx = by_class[lab]
        rng.shuffle(idx)
        n_dev = int(round(len(idx) * dev_fraction))
        if len(idx) >= 2:
            n_dev = min(max(n_dev, 1), len(idx) - 1)
        else:
            n_dev = 0
        dev.extend(idx[:n_dev])
        train.extend(idx[n_dev:])
    return sorted(train), sorted(dev)


@dataclass
class Splits:
    labels: LabelMaps
    train: list[Example]
    dev_sentiment: list[Example]
    dev_topic: list[Example]
    test_sentiment: list[Example]
    test_topic: list[Example]


def three_way_split(labels: list[str], dev_fraction: float, test_fraction: float, seed: int
                    ) -> tuple[list[int], list[int], list[int]]:
    """Indices (train, dev, test), each stratified; both fractions are of the whole file. With
    ``test_fraction`` 0 the (train, dev) split is exactly ``stratified_split``'s, so artifacts
    trained before test splits existed keep their dev rows."""
    if not test_fraction:
        train, dev = stratified_split(labels, dev_fraction, seed)
        return train, dev, []
    if not 0 < dev_fraction + test_fraction < 1:
        raise ValueError("dev_fraction + test_fraction must be below 1")
    rest, test = stratified_split(labels, test_fraction, seed)
    # a seed of its own, so the dev rows are not the same shuffle positions as the test rows
    tr, dv = stratified_split([labels[i] for i in rest], dev_fraction / (1 - test_fraction), seed + 1)
    return sorted(rest[i] for i in tr), sorted(rest[i] for i in dv), test


DEV_FRACTION = 0.1
SPLIT_SEED = 13


def load_splits(data_dir: Path, dev_fraction: float = DEV_FRACTION, seed: int = SPLIT_SEED,
                test_fraction: float = 0.0, clean_text: bool = False) -> Splits:
    """The three splits. ``clean_text``: every text as the worker and ``classify`` clean it before the
    model sees it (``models.io.model_input``: markup, entities and URLs out), so a model trains and is
    measured on what it will be served; a row with nothing left is dropped, as the worker
    dead-letters such an event. The rows of each split are chosen before cleaning, so they are the
    same rows either way."""
    sent = read_labelled_csv(Path(data_dir) / SENTIMENT_FILE)
    top = read_labelled_csv(Path(data_dir) / TOPIC_FILE)
    maps = build_label_maps([l for _, l in sent], [l for _, l in top])
    s_id = {l: i for i, l in enumerate(maps.sentiment)}
    t_id = {l: i for i, l in enumerate(maps.topic)}
    s_tr, s_dev, s_test = three_way_split([l for _, l in sent], dev_fraction, test_fraction, seed)
    t_tr, t_dev, t_test = three_way_split([l for _, l in top], dev_fraction, test_fraction, seed)

    if clean_text:
        from models.io import model_input

        sent = [(model_input(t), l) for t, l in sent]
        top = [(model_input(t), l) for t, l in top]

    def sentiment(rows):
        return [Example(sent[i][0], sentiment=s_id[sent[i][1]]) for i in rows if sent[i][0]]

    def topic(rows):
        return [Example(top[i][0], topic=t_id[top[i][1]]) for i in rows if top[i][0]]

    return Splits(labels=maps, train=sentiment(s_tr) + topic(t_tr),
                  dev_sentiment=sentiment(s_dev), dev_topic=topic(t_dev),
                  test_sentiment=sentiment(s_test), test_topic=topic(t_test))


def artifact_split_config(artifact_dir: Path) -> dict:
    """The ``dev_fraction``, ``test_fraction``, ``seed`` and ``clean_text`` an artifact was trained
    with (``training.json``); an artifact older than a setting used ``load_splits``' default for it."""
    p = Path(artifact_dir) / "training.json"
    cfg = json.loads(p.read_text()).get("config", {}) if p.is_file() else {}
    return {"dev_fraction": cfg.get("dev_fraction", DEV_FRACTION), "test_fraction": cfg.get("test_fraction", 0.0),
            "seed": cfg.get("seed", SPLIT_SEED), "clean_text": cfg.get("clean_text", False)}


def artifact_splits(data_dir: Path, artifact_dir: Path) -> Splits:
    """The splits an artifact was trained with: the same rows in train, dev and test."""
    return load_splits(data_dir, **artifact_split_config(artifact_dir))


def class_weights(labels: list[int], n_classes: int, power: float = 0.5) -> np.ndarray:
    """Inverse-frequency^power weights, mean 1 over the classes. power=0.5 (sqrt) counters imbalance
    without sacrificing the majority class as much as full inverse frequency does."""
    counts = Counter(l for l in labels if l != IGNORE)
    freq = np.array([max(counts.get(c, 0), 1) for c in range(n_classes)], dtype=np.float64)
    w = (freq.sum() / freq) ** power
    return (w / w.mean()).astype(np.float32)


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: int = 50) -> list[list[int]]:
    """Shuffled batches of similar length (less padding), order of batches shuffled too."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    chunk = batch_size * group
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def pad_batch(token_ids: list[list[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic padding to the longest row in the batch."""
    width = max(len(t) for t in token_ids)
    ids = np.full((len(token_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), width), dtype=np.int64)
    for r, t in enumerate(token_ids):
        ids[r, : len(t)] = t
        mask[r, : len(t)] = 1
    return ids, mask
