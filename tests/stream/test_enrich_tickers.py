"""Ticker linking: cashtags and company names, subject vs passing mention."""
from stream.enrich.companies import BY_SYMBOL, COMPANIES
from stream.enrich.tickers import link_tickers


def symbols(mentions):
    return [m.symbol for m in mentions]


def by_symbol(mentions):
    return {m.symbol: m for m in mentions}


def test_cashtags_linked_including_share_class():
    m = by_symbol(link_tickers("Loading up on $AAPL and $BRK.B today"))
    assert set(m) == {"AAPL", "BRK.B"}
    assert m["AAPL"].matched == "$AAPL"


def test_money_amounts_are_not_cashtags():
    assert link_tickers("Raised $5 then $1.2B, now $10M and $3.5bn") == []


def test_lowercase_cashtags_only_for_known_symbols():
    assert symbols(link_tickers("$tsla ripping")) == ["TSLA"]
    assert link_tickers("$lol ok") == []


def test_share_class_aliases_map_to_one_symbol():
    assert symbols(link_tickers("$GOOG and Google and Alphabet")) == ["GOOGL"]
    assert symbols(link_tickers("$FB")) == ["META"]


def test_company_names_and_aliases():
    for text, sym in [("Apple unveils a phone", "AAPL"), ("J.P. Morgan hires", "JPM"),
                      ("JP Morgan hires", "JPM"), ("JPMorgan hires", "JPM"), ("Nvidia rallies", "NVDA"),
                      ("Tesla slides", "TSLA"), ("Google fined", "GOOGL"), ("Apple's margins", "AAPL")]:
        assert symbols(link_tickers(text)) == [sym], text


def test_names_are_case_sensitive_whole_words():
    assert link_tickers("I baked an apple pie and ate pineapple") == []
    assert link_tickers("Applebee's menu") == []


def test_ambiguous_names_guarded():
    assert link_tickers("Goldman lifts its price target on the Big Apple skyline") != []
    assert "TGT" not in symbols(link_tickers("Analysts raise Price Target for Nike"))
    assert "AAPL" not in symbols(link_tickers("Rents in the Big Apple soar"))
    assert "V" not in symbols(link_tickers("New H-1B visa rules"))


def test_all_caps_headline_still_linked():
    assert symbols(link_tickers("TESLA SHARES PLUNGE AFTER RECALL")) == ["TSLA"]


def test_headline_subject_outranks_passing_mention():
    m = by_symbol(link_tickers(
        "The carmaker said demand was weak. Rivals such as Ford and General Motors were little changed.",
        title="Tesla shares plunge after recall",
    ))
    assert m["TSLA"].relevance == 1.0
    assert m["F"].relevance < 0.6 and m["GM"].relevance < 0.6
    assert symbols(link_tickers("x", title="Tesla shares plunge"))[0] == "TSLA"


def test_subject_at_start_of_post_and_decay_later():
    mentions = link_tickers("$NVDA breaking out again. Lots of words here before anything else; "
                            "also own some $AMD and $INTC at the very end")
    m = by_symbol(mentions)
    assert symbols(mentions)[0] == "NVDA"
    assert m["NVDA"].relevance >= 0.9
    assert m["AMD"].relevance < 0.5


def test_joined_subjects_share_the_headline():
    m = by_symbol(link_tickers("x", title="Apple, Microsoft and Nvidia lead tech rally"))
    assert m["AAPL"].relevance == m["MSFT"].relevance == m["NVDA"].relevance == 1.0


def test_only_ticker_is_the_subject():
    (m,) = link_tickers("After a long day of trading with many twists and turns, shares of Boeing slipped.")
    assert m.symbol == "BA" and m.relevance >= 0.9


def test_deduplicated_with_max_relevance_and_bounded():
    mentions = link_tickers("Apple and $AAPL again: Apple", title="Apple beats")
    assert symbols(mentions) == ["AAPL"]
    assert mentions[0].relevance == 1.0 and mentions[0].matched == "Apple"
    for m in link_tickers("$A $B $C Apple Tesla " * 20):
        assert 0.0 <= m.relevance <= 1.0


def test_dictionary_is_large_and_consistent():
    assert len(COMPANIES) >= 100
    assert len(BY_SYMBOL) == len(COMPANIES)
    assert BY_SYMBOL["GOOGL"].names == ("Alphabet", "Google")
