"""Synthetic stream: deterministic, Poisson-paced, realistic content, scripted bursts, malformed bytes."""
from collections import Counter
from datetime import datetime, timezone

import pytest

from marketpulse.schemas import RawEvent
from stream.enrich import Enricher
from stream.enrich.tickers import link_tickers
from stream.generate import MALFORMED_KINDS, TOPICS, Generator, NegativeBurst, parse_scenario
from stream.generate.runner import run_generator
from marketpulse.wire import Rejection
from stream.validate import validate_record

START = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)


def gen(**kw) -> Generator:
    return Generator(**{"seed": 7, "rate_per_s": 20, "duration_s": 60, "start": START, **kw})


def test_same_seed_same_stream_other_seed_different():
    a = [(t, e.model_dump_json()) for t, e in gen()]
    assert a == [(t, e.model_dump_json()) for t, e in gen()]
    assert a != [(t, e.model_dump_json()) for t, e in gen(seed=8)]


def test_time_ordered_within_duration_at_about_the_rate():
    offs = [t for t, _ in gen(duplicate_fraction=0)]
    assert offs == sorted(offs) and 0 <= offs[0] and offs[-1] < 60
    assert 1000 < len(offs) < 1400  # Poisson(1200)
    ev = next(iter(gen()))[1]
    assert isinstance(ev, RawEvent) and ev.published_at >= START


def test_mix_of_sources_topics_sentiments_and_tickers():
    samples = list(gen(duration_s=300).samples())
    assert set(TOPICS) == {s.topic for s in samples} and len(TOPICS) == 20
    assert set(Counter(s.sentiment for s in samples)) == {"negative", "neutral", "positive"}
    assert set(Counter(s.event.source for s in samples)) == {"news", "social"}
    assert len({s.ticker for s in samples if s.ticker}) >= 45
    posts = [s.event for s in samples if s.event.source == "social"]
    assert all(p.author.startswith("@") for p in posts)
    assert any("$" in p.text for p in posts) and any("@example" in p.text or "555-01" in p.text for p in posts)
    news = [s for s in samples if s.event.source == "news" and s.ticker]
    assert sum(s.ticker in {m.symbol for m in link_tickers(s.event.text, s.event.title)} for s in news) > 0.95 * len(news)


def test_near_duplicates_are_generated_and_detected():
    samples = list(gen().samples())
    copies = [s for s in samples if s.duplicate_of]
    assert copies
    enr = Enricher("k")
    found = {s.event.id: enr.enrich(s.event).duplicate_of for s in samples}
    hits = sum(found[s.event.id] == s.duplicate_of for s in copies)
    assert hits >= 0.8 * len(copies)


def test_pii_in_posts_is_redacted_by_enrichment():
    samples = [s for s in gen(pii_fraction=1.0, social_fraction=1.0, duration_s=10).samples()]
    enr = Enricher("k")
    for s in samples:
        text = enr.enrich(s.event).event.text
        assert "@example" not in text and "555-01" not in text and "7946" not in text


def test_burst_scenario_parsing():
    b = parse_scenario("burst:TSLA@30+20x5")
    assert b == NegativeBurst(ticker="TSLA", start_s=30, duration_s=20, rate_per_s=5)
    assert b.name == "burst:TSLA@30+20x5"
    assert parse_scenario("burst:aapl@10").ticker == "AAPL"
    for bad in ("burst:TSLA", "spike:TSLA@1", "burst:ZZZZ@1+2x3", "burst:TSLA@-1"):
        with pytest.raises(ValueError):
            parse_scenario(bad)


def test_burst_adds_negative_events_about_the_ticker_in_its_window():
    samples = list(gen(scenarios=["burst:TSLA@30+20x5"]).samples())
    burst = [s for s in samples if s.scenario]
    assert 60 < len(burst) < 150  # Poisson(100) plus re-publications
    assert all(30 <= s.offset_s < 60 and s.sentiment == "negative" and s.ticker == "TSLA" for s in burst)
    assert all("TSLA" in {m.symbol for m in link_tickers(s.event.text, s.event.title)} for s in burst)
    in_window = sum(1 for s in samples if 30 <= s.offset_s < 50 and s.ticker == "TSLA")
    before = sum(1 for s in samples if 0 <= s.offset_s < 20 and s.ticker == "TSLA")
    assert in_window > 5 * max(1, before)


def test_records_bytes_with_malformed_fraction():
    recs = list(gen(malformed_fraction=0.2).raw_records())
    bad = [r for r in recs if r.malformed]
    assert 0.1 * len(recs) < len(bad) < 0.3 * len(recs)
    assert {r.malformed for r in bad} == set(MALFORMED_KINDS)
    for r in recs:
        out = validate_record(r.value, 20_000)
        assert isinstance(out, Rejection) == bool(r.malformed), (r.malformed, r.value[:80])
        assert r.source in ("news", "social") and r.key
    assert [x[:3] for x in gen().records()] == [(r.offset_s, r.source, r.key) for r in gen().raw_records()]


def test_runner_sends_everything_without_a_broker():
    class Sink:
        def __init__(self):
            self.sent = []

        def send_bytes(self, source, key, value):
            self.sent.append((source, key, value))

        def flush(self):
            pass

    sink = Sink()
    stats = run_generator(None, rate=20, duration=5, seed=1, malformed_fraction=0.1, realtime=False, producer=sink)
    assert stats["sent"] == len(sink.sent) == stats["news"] + stats["social"]
    assert 0 < stats["malformed"] < stats["sent"]
