"""Near-duplicate detection: copies get low novelty and point at the first event."""
import random

import pytest

import stream.enrich.novelty as novelty
from stream.enrich.novelty import NoveltyIndex

HEADLINE = "Tesla shares plunge 12% after recall of 2 million vehicles"


def test_first_event_is_fully_novel():
    assert NoveltyIndex().check_and_add("a", HEADLINE, 0) == (100.0, None)


def test_same_headline_from_another_feed_is_a_duplicate():
    idx = NoveltyIndex()
    idx.check_and_add("reuters-1", HEADLINE + " https://reuters.example.com/a", 0)
    nov, dup = idx.check_and_add("bbg-7", "TESLA SHARES PLUNGE 12% AFTER RECALL OF 2 MILLION VEHICLES!! https://b.example/x", 5)
    assert dup == "reuters-1" and nov < 20


def test_retweet_is_a_duplicate_and_chains_point_at_the_first():
    idx = NoveltyIndex()
    idx.check_and_add("p1", "$TSLA ripping today 🚀 who's still holding?", 0)
    assert idx.check_and_add("p2", "RT @bob: $TSLA ripping today 🚀 who's still holding?", 1)[1] == "p1"
    assert idx.check_and_add("p3", "RT @carol: RT @bob: $TSLA ripping today 🚀 who's still holding?", 2)[1] == "p1"


def test_unrelated_texts_are_novel():
    idx = NoveltyIndex()
    idx.check_and_add("a", HEADLINE, 0)
    nov, dup = idx.check_and_add("b", "Fed holds rates steady and signals two cuts later this year", 1)
    assert dup is None and nov > 80


def test_key_separates_same_words_about_different_companies():
    idx = NoveltyIndex()
    idx.check_and_add("a", "$AMD getting crushed today this is ugly", 0, key="AMD")
    assert idx.check_and_add("b", "$MSFT getting crushed today this is ugly", 1, key="MSFT") == (100.0, None)


def test_redelivered_event_gets_its_first_answer():
    idx = NoveltyIndex()
    assert idx.check_and_add("a", HEADLINE, 0) == (100.0, None)
    assert idx.check_and_add("a", HEADLINE, 10) == (100.0, None)
    assert len(idx) == 1


def test_evicted_by_age():
    idx = NoveltyIndex(window_seconds=60)
    idx.check_and_add("a", HEADLINE, 0)
    assert idx.check_and_add("b", HEADLINE, 120) == (100.0, None)
    assert len(idx) == 1


def test_evicted_by_count():
    idx = NoveltyIndex(window_size=3)
    idx.check_and_add("a", HEADLINE, 0)
    for i, t in enumerate(["Fed holds rates", "Gold hits record", "Oil slumps on demand"]):
        idx.check_and_add(f"x{i}", t, 1 + i)
    assert len(idx) == 3
    assert idx.check_and_add("b", HEADLINE, 10) == (100.0, None)


def test_deterministic_across_instances():
    def run():
        idx = NoveltyIndex()
        return [idx.check_and_add(str(i), f"{HEADLINE} variant {i % 3}", i) for i in range(10)]
    assert run() == run()


def test_empty_text_is_novel_and_not_stored():
    idx = NoveltyIndex()
    assert idx.check_and_add("a", "https://example.com/only-a-link", 0) == (100.0, None)
    assert len(idx) == 0


def _random_texts(seed: int, n: int) -> list[str]:
    """`n` texts of 12 random made-up words: pairwise unrelated, so none should be compared."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(20_000)]
    return [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(n)]


def test_work_per_check_does_not_grow_with_the_window(monkeypatch):
    # Counted, not timed: the number of signature comparisons per check is what LSH banding bounds;
    # a linear scan would do one per stored event. Throughput lives in bench/bench_novelty.py.
    calls = []
    real = novelty.similarity
    monkeypatch.setattr(novelty, "similarity", lambda a, b: calls.append(1) or real(a, b))
    probes = _random_texts(seed=2, n=50)
    per_check: dict[int, list[int]] = {}
    for size in (200, 5000):
        idx = NoveltyIndex(window_size=size + len(probes) + 1)
        for i, t in enumerate(_random_texts(seed=1, n=size)):
            idx.check_and_add(f"w{i}", t, 0)
        idx.check_and_add("orig", HEADLINE, 0)
        assert len(idx) == size + 1
        counts = []
        for j, t in enumerate(probes):
            calls.clear()
            assert idx.check_and_add(f"p{j}", t, 1)[1] is None
            counts.append(len(calls))
        per_check[size] = counts
        # a near-copy is still found, through its bucket rather than by a scan
        calls.clear()
        assert idx.check_and_add("copy", HEADLINE.upper() + "!!", 2)[1] == "orig"
        assert 1 <= len(calls) <= 5, (size, len(calls))  # 1+: the counter sees comparisons
    assert max(per_check[200]) <= 5 and max(per_check[5000]) <= 5, per_check
    # 25x the window, about the same work: nowhere near the 250,000 comparisons of a linear scan
    assert sum(per_check[5000]) <= sum(per_check[200]) + len(probes) // 10, per_check


def test_rejects_bad_window():
    with pytest.raises(ValueError):
        NoveltyIndex(window_size=0)
