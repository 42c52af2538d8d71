"""The run-time tokenizer (``tokenizers`` only, read from the build directory) gives the same ids and
masks as transformers' tokenizer for the base model, so the lean install classifies exactly as the
full one."""
from __future__ import annotations

import pytest

from models import build
from models.batching import tokenize
from models.tokenizer import FastTokenizer

LONG = ("Shares of $NVDA extended gains on Tuesday after the chipmaker guided above consensus, while "
        "analysts at several brokers lifted targets citing datacenter demand and supply normalisation. ") * 8

# Inputs chosen to exercise the normalizer, pre-tokenizer, special tokens and truncation.
TEXTS = [
    "$AAPL beats estimates",
    "$TSLA $NVDA $SPY calls 🚀🚀🚀 to the moon",
    "Check https://example.com/markets?q=fed&x=1#top and www.reuters.com/markets now",
    "Credit Suisse shares sink to all-time low 📉",
    "👨‍👩‍👧‍👦 family emoji, 👍🏽 skin tone, 🇺🇸 flag",
    "#earnings @elonmusk RT: $BTC.X up 5.5% (+$1,234.56) at 10:30am",
    "Les marchés européens reculent après les chiffres de l'inflation",
    "日本銀行が金融政策を維持 — 円安が進む",
    "السوق المالية تنخفض بعد قرار الفائدة",
    "Ünïcödé ﬁ ligature, combining é vs é, ＦＵＬＬＷＩＤＴＨ",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "zero\u200bwidth\u200dspace and\u00a0nbsp",
    "control \x00 nul \x07 bell \x1b esc",
    "literal [CLS] and [SEP] and [MASK] and [PAD] and [UNK] tokens",
    "[cls] lower-case lookalikes [sep]",
    "&amp; &lt;b&gt; <b>html</b> &#36;AAPL",
    "supercalifragilisticexpialidocious" * 10,
    "a",
    ".",
    " ",
    "",
    "\n\t ",
    "1234567890" * 30,
    "ALL CAPS HEADLINE: FED HIKES 75BPS!!!",
    "Price target cut to $150 from $200; EPS $(0.12) vs. est. $0.05",
    "😀" * 200,  # one word over the WordPiece length limit: a single [UNK]
    "😀 📈 " * 100,
    LONG,
    LONG + " 🚀 https://t.co/abc123",
    "x " * 600,
    "Δ delta, Ω omega, ß eszett, İstanbul, ǅ titlecase",
]

MAX_LENGTHS = (128, 16, 512)


@pytest.fixture(scope="module")
def tokenizers(model_settings):
    from models.base import load_tokenizer

    paths = build.ensure_built(model_settings)
    return FastTokenizer.from_file(paths["tokenizer"]), load_tokenizer()


def test_the_texts_reach_truncation(tokenizers):
    lean, _ = tokenizers
    lengths = [len(r) for r in lean(TEXTS, max_length=10_000)["input_ids"]]
    assert sum(n > 128 for n in lengths) >= 4 and sum(n > 512 for n in lengths) >= 1


@pytest.mark.parametrize("max_length", MAX_LENGTHS)
def test_same_ids_and_mask_as_transformers(tokenizers, max_length):
    lean, hf = tokenizers
    want = hf(TEXTS, truncation=True, max_length=max_length, padding=False)
    got = lean(TEXTS, truncation=True, max_length=max_length, padding=False)
    assert got["input_ids"] == want["input_ids"]
    assert got["attention_mask"] == want["attention_mask"]
    assert max(len(r) for r in got["input_ids"]) == max_length


def test_one_text_at_a_time_and_the_batching_helper_agree(tokenizers):
    lean, hf = tokenizers
    for t in TEXTS:
        assert lean([t], max_length=128)["input_ids"] == hf([t], truncation=True, max_length=128)["input_ids"]
    assert tokenize(lean, TEXTS, 128) == tokenize(hf, TEXTS, 128)


def test_switching_max_length_does_not_leak_between_calls(tokenizers):
    lean, _ = tokenizers
    short = lean([LONG], max_length=16)["input_ids"][0]
    full = lean([LONG], max_length=128)["input_ids"][0]
    untruncated = lean([LONG], truncation=False)["input_ids"][0]
    assert len(short) == 16 and len(full) == 128 and len(untruncated) > 128
    assert short[:-1] == full[:15] and short[-1] == full[-1]  # both end with [SEP]


def test_rejects_what_it_does_not_support(tokenizers, tmp_path):
    lean, _ = tokenizers
    with pytest.raises(TypeError):
        lean("one string", max_length=8)
    with pytest.raises(ValueError):
        lean(["a"], max_length=8, padding=True)
    with pytest.raises(FileNotFoundError):
        FastTokenizer.from_file(tmp_path / "tokenizer.json")
