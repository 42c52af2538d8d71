"""Normalisation: plain, comparable text; URLs kept in storage but not fed to the model."""
from marketpulse.text import clean_optional, clean_text, model_text


def test_html_tags_stripped_and_entities_unescaped():
    assert clean_text("<p>Apple&nbsp;beats <b>estimates</b> &amp; raises&#39;outlook&#39;</p>") == (
        "Apple beats estimates & raises'outlook'"
    )


def test_block_tags_separate_words_inline_tags_do_not():
    assert clean_text("<p>Shares fell</p><p>Bonds rose</p>") == "Shares fell Bonds rose"
    assert clean_text("Re<b>call</b> of <a href='x'>Tesla</a>.") == "Recall of Tesla."


def test_double_escaped_rss_html_is_stripped():
    assert clean_text("&lt;p&gt;Shares &amp;amp; bonds&lt;/p&gt;") == "Shares & bonds"


def test_comparison_signs_in_prose_survive():
    assert clean_text("EPS < 5 and revenue > 3B") == "EPS < 5 and revenue > 3B"


def test_script_and_style_contents_removed():
    assert clean_text("<style>p{color:red}</style>Hello<script>alert(1)</script> world") == "Hello world"


def test_whitespace_collapsed_to_single_spaces():
    assert clean_text("  Fed\tholds\n\n rates \r\n steady ") == "Fed holds rates steady"


def test_nfkc_and_invisible_characters():
    # full-width letters, a ligature, NBSP and a zero-width space
    assert clean_text("ＡＡＰＬ ﬁnance\u00a0up\u200b 5%") == "AAPL finance up 5%"


def test_optional_field_empty_after_cleaning_is_none():
    assert clean_optional("<br/>  ") is None
    assert clean_optional(None) is None


def test_model_text_drops_urls_but_keeps_words():
    text = "Tesla recall widens https://example.com/a?b=1 see www.example.org/x for more"
    assert model_text(text) == "Tesla recall widens see for more"


def test_model_text_prefixes_title_once():
    assert model_text("Analysts expect more.", "Apple beats estimates") == "Apple beats estimates. Analysts expect more."
    assert model_text("Apple beats estimates. Analysts expect more.", "Apple beats estimates") == (
        "Apple beats estimates. Analysts expect more."
    )


def test_bidirectional_overrides_and_isolates_are_removed():
    assert clean_text("\u202eslaeT\u202c shares \u2066up\u2069") == "slaeT shares up"
