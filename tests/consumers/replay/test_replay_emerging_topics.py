"""Emerging topics (cluster naming and growth), speed parsing and pacing, run-scoped index names."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from consumers.replay.naming import replay_index
from consumers.replay.pacing import Pacer, parse_speed
from consumers.replay.emerging_topics import ctfidf_terms, discover_topics, tfidf_embedder
from marketpulse.settings import ElasticsearchSettings

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)
THEMES = {
    "chip": ["chip export ban hits semiconductor suppliers", "semiconductor export curbs widen for chip makers",
             "new chip export restrictions rattle semiconductor names", "chip makers face export license delays"],
    "bank": ["regional bank deposit outflows accelerate", "bank deposit flight worries regional lenders",
             "deposit outflows pressure regional bank funding", "regional lenders report deposit declines"],
    "oil": ["crude oil output cut announced by producers", "oil producers agree crude output cut",
            "crude prices jump after oil output cut", "output cut lifts crude oil futures"],
}


def test_ctfidf_names_each_cluster_by_its_own_distinctive_terms():
    texts = [t for ts in THEMES.values() for t in ts]
    labels = [i for i, ts in enumerate(THEMES.values()) for _ in ts]
    names = ctfidf_terms(texts, labels, top_n=2)
    assert set(names[0]) <= {"chip", "export", "semiconductor"} and names[0]
    assert set(names[1]) <= {"deposit", "regional", "bank", "outflows"} and names[1]
    assert set(names[2]) <= {"crude", "oil", "output", "cut", "output cut"} and names[2]
    # Stopwords and market boilerplate never name a cluster.
    names = ctfidf_terms(["the stock is up today", "the shares fell today"], [0, 1])
    assert all(not ({"the", "is", "today", "stock", "shares"} & set(v)) for v in names.values())


VOCAB = {"chip": "chip export semiconductor curbs license foundry wafer restrictions".split(),
         "bank": "bank deposit regional outflows lenders funding liquidity withdrawals".split(),
         "oil": "crude oil output cut producers barrel opec futures".split()}
FILLER = "analysts warned investors friday morning report traders week".split()


def themed(rng: random.Random, theme: str) -> str:
    return " ".join(rng.sample(VOCAB[theme], 4) + rng.sample(FILLER, 2))


def test_discover_finds_the_themes_and_ranks_the_growing_one_first():
    rng = random.Random(3)
    texts, times = [], []
    # Chip talk appears only in the second hour; banks fade; oil is steady.
    plan = {"chip": (0, 24), "bank": (20, 4), "oil": (12, 12)}
    for theme, (first, second) in plan.items():
        for i in range(first + second):
            texts.append(themed(rng, theme))
            times.append(T0 + timedelta(minutes=(i % 60 if i < first else 60 + i % 60)))
    clusters = discover_topics(texts, times, tfidf_embedder, k="auto", k_range=range(2, 7))
    assert len(clusters) == 3
    top = clusters[0]
    assert set(top.terms) <= set(VOCAB["chip"]) and top.growth > 0 and top.first_half == 0
    assert set(clusters[-1].terms) <= set(VOCAB["bank"]) and clusters[-1].growth < 0
    assert top.label == " · ".join(top.terms) and len(top.terms) == 3
    assert sum(c.size for c in clusters) == len(texts) and all(c.examples for c in clusters)


def test_speed_and_pacer():
    assert parse_speed("max") is None and parse_speed("10x") == 10.0 and parse_speed("2.5") == 2.5
    for bad in ("0x", "fast", "-3x"):
        with pytest.raises(ValueError):
            parse_speed(bad)
    now = [100.0]
    slept: list[float] = []
    pacer = Pacer(10.0, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    pacer.wait(1000.0)
    pacer.wait(1060.0)           # 60 s of event time at 10x = 6 s of wall time
    now[0] += 10                 # processing fell behind: no sleep to catch up
    pacer.wait(1070.0)
    assert slept == [pytest.approx(6.0)]
    assert Pacer(None).wait(5.0) == 0.0


def test_replay_indices_are_run_scoped_and_never_live():
    es = ElasticsearchSettings()
    assert replay_index(es, "r1", "alerts") == "marketpulse-replay-r1-alerts"
    assert replay_index(es, "r1", "events") == "marketpulse-replay-r1-events"
    assert not replay_index(es, "r1", "events").startswith(f"{es.index_prefix}-")
    with pytest.raises(ValueError):
        replay_index(es, "Bad-ID", "alerts")
