"""The Enricher: clean -> privacy -> tickers + novelty, for what is stored and what the model sees."""
from datetime import datetime, timedelta, timezone

import pytest

from marketpulse.schemas import LabeledEvent, RawEvent
from stream.enrich import EnrichError, Enricher, NoveltyIndex
from stream.enrich.privacy import pseudonym

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def raw(**kw) -> RawEvent:
    base = {"id": "e1", "source": "social", "source_name": "X", "published_at": T0,
            "text": "hello", "url": "https://x.example.com/s/1"}
    return RawEvent(**{**base, **kw})


def test_social_event_is_scrubbed_before_storage():
    e = Enricher("secret").enrich(raw(
        text="<b>@TraderJoe</b> says $TSLA&amp;co tank — DM jane@example.com or +1 212-555-0100 https://t.example/x",
        title="@TraderJoe on Tesla", author="@TraderJoe"))
    ev = e.event
    pj = pseudonym("traderjoe", "secret")
    assert ev.author == pj
    assert ev.text == f"{pj} says $TSLA&co tank — DM [email] or [phone] https://t.example/x"
    assert ev.title == f"{pj} on Tesla"
    assert "https" not in e.model_text and "[email]" in e.model_text
    assert "@TraderJoe" not in ev.model_dump_json()


def test_news_keeps_handles_and_byline_but_redacts_contacts():
    e = Enricher("k").enrich(raw(source="news", title="Apple beats", author="Jane Doe",
                                 text="Per @tim_cook, results beat. Contact press@apple.example.com"))
    assert "@tim_cook" in e.event.text and "[email]" in e.event.text and e.event.author == "Jane Doe"


def test_tickers_and_model_text_from_title_and_text():
    e = Enricher("k").enrich(raw(source="news", title="Tesla shares plunge", text="Rivals like Ford were flat."))
    assert e.model_text == "Tesla shares plunge. Rivals like Ford were flat."
    assert [t.symbol for t in e.tickers] == ["TSLA", "F"]


def test_duplicates_across_feeds_point_at_first_event():
    enr = Enricher("k", NoveltyIndex())
    a = enr.enrich(raw(id="a", source="news", source_name="Reuters", title="Tesla recalls 2 million cars",
                       text="Tesla recalls 2 million cars. More soon.", url="https://r.example/1"))
    b = enr.enrich(raw(id="b", source="news", source_name="Bloomberg", title="TESLA RECALLS 2 MILLION CARS",
                       text="TESLA RECALLS 2 MILLION CARS. MORE SOON.", url="https://b.example/9",
                       published_at=T0 + timedelta(seconds=30)))
    assert (a.novelty, a.duplicate_of) == (100.0, None)
    assert b.duplicate_of == "a" and b.novelty < 20


def test_labeled_event_can_be_built_from_the_result():
    e = Enricher("k").enrich(raw(text="$AAPL up"))
    ev = LabeledEvent(**e.event.model_dump(), tickers=e.tickers, novelty=e.novelty, duplicate_of=e.duplicate_of,
                      sentiment="positive",
                      sentiment_scores={"positive": 1.0}, topic="Stock Movement", topic_scores=[],
                      model_version="t")
    assert ev.tickers[0].symbol == "AAPL"


def test_text_that_is_only_markup_cannot_be_enriched():
    with pytest.raises(EnrichError):
        Enricher("k").enrich(raw(text="<p> </p>"))


def test_text_that_is_only_links_leaves_the_classifier_nothing_and_cannot_be_enriched():
    with pytest.raises(EnrichError, match="URLs"):
        Enricher("k").enrich(raw(text="https://example.com/a www.example.org"))


def test_key_is_required():
    with pytest.raises(ValueError):
        Enricher("")
