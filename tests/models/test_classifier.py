"""Inference API: output format, order, batching, parity between backends, explanations, embeddings,
and the convenience API (``from models import Classifier``, ``Classifier.load()``, ``clf(text)``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.artifact import read_config, read_labels
from tests.models.conftest import load_classifier

# Written for these tests (not from the training data): headlines and posts across tones, topics
# and lengths, including very short, very long and non-ASCII ones.
TEXTS = [
    "Fed raises rates by 75 basis points, signals more hikes ahead",
    "$AAPL beats earnings estimates as iPhone sales surge",
    "Tesla shares plunge 12% after disappointing deliveries",
    "Oil prices jump as OPEC+ agrees to deeper output cuts",
    "Goldman Sachs to cut 3,200 jobs amid dealmaking slump",
    "Microsoft announces $10 billion investment in OpenAI",
    "Treasury yields hit 15-year high as inflation stays sticky",
    "Gold climbs to record on safe-haven demand",
    "Dollar weakens against yen after BOJ policy surprise",
    "Airbnb files confidentially for IPO",
    "JPMorgan raises dividend to $1.05 per share",
    "SEC sues crypto exchange over unregistered securities",
    "Senate passes infrastructure bill in bipartisan vote",
    "Amazon CEO steps down, names successor",
    "Pfizer to acquire Seagen in $43 billion deal",
    "Stocks close mixed as investors await jobs report",
    "$NVDA up 4% premarket",
    "Bank failures spark fears of wider credit crunch",
    "Morgan Stanley downgrades Netflix to underweight, cuts price target",
    "China's factory activity contracts for third straight month",
    "Nike reports record quarterly revenue, raises full-year outlook",
    "ECB holds rates steady, Lagarde warns of persistent inflation",
    "Copper prices slide on weak demand from China",
    "Ford recalls 500,000 vehicles over brake defect",
    "S&P 500 notches best week since November",
    "Boeing shares tumble after FAA grounds 737 MAX jets again",
    "Coinbase misses revenue estimates as trading volumes fall",
    "Unemployment rate falls to 3.4%, lowest since 1969",
    "Warren Buffett's Berkshire buys more Occidental shares",
    "Evergrande defaults on offshore bonds",
    "Apple unveils new MacBook Pro with M3 chip",
    "Meta fined $1.3 billion by EU regulators over data transfers",
    "Housing starts drop 8% in March",
    "Intel to lay off thousands as PC demand collapses",
    "Visa and Mastercard settle antitrust lawsuit with merchants",
    "Bitcoin rallies above $30,000 for first time in months",
    "Retail sales unexpectedly rise in January",
    "What a day. Markets are wild",
    "Crash",
    "Great quarter!",
    "$SPY",
    "Analysts see upside for semiconductor stocks into year end, with several firms lifting targets on "
    "chipmakers after strong guidance; memory prices are stabilising and datacenter demand remains robust, "
    "though some caution that export restrictions and inventory corrections could weigh on results in the "
    "coming quarters, particularly for equipment makers exposed to China. " * 2,
    "Les marchés européens reculent après les chiffres de l'inflation",
    "Saudi Aramco profit falls 25% on lower crude prices",
    "Walmart CFO to retire at end of fiscal year",
    "Federal Reserve minutes show officials divided on pace of tightening",
    "Exxon posts record annual profit of $56 billion",
    "Credit Suisse shares sink to all-time low 📉",
    "Hedge funds pile into short bets against regional banks",
    "Disney to cut 7,000 jobs in cost-saving push",
]


FP32_PROB_TOL = 1e-3  # torch fp32 vs ONNX Runtime fp32: same weights, different kernels
INT8_MIN_AGREEMENT = 0.9  # dynamic int8 vs fp32: share of identical labels on TEXTS,
INT8_MEDIAN_TOL = 0.05  # median over texts of the largest probability difference,
INT8_MAX_TOL = 0.4  # and the worst text (borderline topics can swing more than typical texts)


def test_prediction_format(torch_clf, model_settings):
    labels = read_labels(model_settings.artifact_dir)
    version = read_config(model_settings.artifact_dir)["version"]
    preds = torch_clf.predict(TEXTS[:5])
    assert len(preds) == 5
    for p in preds:
        assert p.model_version == version == torch_clf.model_version
        assert list(p.sentiment_scores) == list(labels.sentiment)
        assert sum(p.sentiment_scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.sentiment == max(p.sentiment_scores, key=p.sentiment_scores.get)
        assert len(p.topic_scores) == 3
        assert [s for _, s in p.topic_scores] == sorted((s for _, s in p.topic_scores), reverse=True)
        assert p.topic == p.topic_scores[0][0] and p.topic in labels.topic
        assert p.explanation is None
        d = p.to_dict()
        assert set(d) == {"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version"}
        assert d["topic_scores"] == [{"label": l, "score": s} for l, s in p.topic_scores]  # as in LabeledEvent
        json.dumps(d)


def test_order_and_batch_size_do_not_change_results(torch_clf):
    whole = torch_clf.predict_proba(TEXTS)
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = torch_clf.predict_proba([TEXTS[i] for i in perm])
    old = torch_clf.batch_size
    try:
        torch_clf.batch_size = 1
        one_by_one = torch_clf.predict_proba(TEXTS[:12])
    finally:
        torch_clf.batch_size = old
    for a, b, c in zip(whole, shuffled, one_by_one):
        np.testing.assert_allclose(a[perm], b, atol=1e-5)
        np.testing.assert_allclose(a[:12], c, atol=1e-4)


def test_cpu_backends_run_passes_capped_by_padded_tokens(onnx_clf, torch_clf, model_settings):
    from models.classifier import CPU_ROWS_PER_PASS, CPU_TOKENS_PER_PASS

    for clf in (onnx_clf, torch_clf):  # torch on this machine's CPU
        assert (clf.batch_size, clf.max_tokens) == (CPU_ROWS_PER_PASS, CPU_TOKENS_PER_PASS), clf.backend
    assert load_classifier(model_settings, "onnx", batch_size=8).batch_size == 8  # a given cap is kept
    # fp32: the passes a budget cuts give the same results as one text at a time
    old = onnx_clf.max_tokens
    try:
        onnx_clf.max_tokens = 40
        budget = onnx_clf.predict_proba(TEXTS)
    finally:
        onnx_clf.max_tokens = old
    onnx_clf.batch_size = 1
    try:
        one_by_one = onnx_clf.predict_proba(TEXTS)
    finally:
        onnx_clf.batch_size = CPU_ROWS_PER_PASS
    for a, b in zip(budget, one_by_one):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_predictions_are_not_constant(torch_clf):
    preds = torch_clf.predict(TEXTS)
    assert len({p.sentiment for p in preds}) == 3
    assert len({p.topic for p in preds}) >= 8


def test_clear_cases_are_labelled_as_expected(torch_clf):
    preds = torch_clf.predict([
        "Tesla shares plunge 12% after disappointing deliveries",
        "Nike reports record quarterly revenue, raises full-year outlook",
        "Fed raises rates by 75 basis points, signals more hikes ahead",
        "JPMorgan raises dividend to $1.05 per share",
    ])
    assert preds[0].sentiment == "negative"
    assert preds[1].sentiment == "positive"
    assert preds[2].topic == "Fed | Central Banks"
    assert preds[3].topic == "Dividend"


def test_text_beyond_max_length_is_truncated_not_rejected(torch_clf):
    long = TEXTS[41] * 4  # far beyond 128 tokens
    s_long, t_long = torch_clf.predict_proba([long])
    s_more, t_more = torch_clf.predict_proba([long + " Shares collapse as the company files for bankruptcy."])
    np.testing.assert_allclose(s_long, s_more, atol=1e-6)  # the tail past the cap is never seen
    np.testing.assert_allclose(t_long, t_more, atol=1e-6)


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_text_raises_value_error_naming_the_index(torch_clf, bad):
    with pytest.raises(ValueError, match=r"index\(es\) \[1\]"):
        torch_clf.predict(["fine", bad])


def test_single_string_instead_of_list_is_rejected(torch_clf):
    with pytest.raises(TypeError):
        torch_clf.predict("Fed hikes")


def test_embeddings_unit_length_and_semantic(torch_clf):
    e = torch_clf.embed([
        "Fed raises interest rates again",
        "Central bank hikes rates by a quarter point",
        "Apple launches a new iPhone",
    ])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]


def test_torch_and_onnx_fp32_agree(torch_clf, onnx_clf):
    assert onnx_clf.backend == "onnx"
    ref, got = torch_clf.predict_proba(TEXTS), onnx_clf.predict_proba(TEXTS)
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(r.argmax(1), g.argmax(1))
        np.testing.assert_allclose(r, g, atol=FP32_PROB_TOL)
    np.testing.assert_allclose(torch_clf.embed(TEXTS), onnx_clf.embed(TEXTS), atol=FP32_PROB_TOL)


def test_onnx_int8_close_to_fp32(onnx_clf, int8_clf):
    assert int8_clf.backend == "onnx-int8"
    ref, got = onnx_clf.predict_proba(TEXTS), int8_clf.predict_proba(TEXTS)
    for r, g in zip(ref, got):
        agreement = float(np.mean(r.argmax(1) == g.argmax(1)))
        assert agreement >= INT8_MIN_AGREEMENT
        per_text = np.abs(r - g).max(axis=1)
        assert np.median(per_text) <= INT8_MEDIAN_TOL
        assert per_text.max() <= INT8_MAX_TOL
        assert per_text.max() > 0  # really a different (quantized) model


def test_explanations_only_for_negative_predictions(onnx_clf):
    texts = TEXTS[:30]
    preds = onnx_clf.predict(texts, explain=True)
    negatives = [(t, p) for t, p in zip(texts, preds) if p.sentiment == "negative"]
    assert negatives, "fixture texts should contain negative headlines"
    for t, p in zip(texts, preds):
        if p.sentiment != "negative":
            assert p.explanation == []
            continue
        assert 1 <= len(p.explanation) <= 5
        assert set(p.explanation) <= set(t.split())
        # dropping the top word lowers P(negative): the explanation is faithful to the model
        words = t.split()
        words.remove(p.explanation[0])
        reduced = onnx_clf.predict_proba([" ".join(words)])[0][0, 0]
        assert reduced < p.sentiment_scores["negative"]
        assert "explanation" in p.to_dict()


def test_explain_gives_the_words_behind_each_predicted_sentiment(int8_clf):
    texts = [TEXTS[2], TEXTS[20], TEXTS[33]]  # negative, positive, negative
    preds = int8_clf.predict(texts)
    assert [p.sentiment for p in preds] == ["negative", "positive", "negative"]
    words = int8_clf.explain(texts)
    assert len(words) == 3 and all(1 <= len(w) <= 5 for w in words)
    for t, p, w in zip(texts, preds, words):
        assert set(w) <= set(t.split())
        # faithful to the model: without its top word the text scores its own class lower
        rest = t.split()
        rest.remove(w[0])
        col = int8_clf.labels.sentiment.index(p.sentiment)
        assert int8_clf.predict_proba([" ".join(rest)])[0][0, col] < p.sentiment_scores[p.sentiment]
    assert int8_clf.explain(texts, top_k=1) == [w[:1] for w in words]


def test_explain_with_a_label_explains_that_sentiment_for_every_text(int8_clf):
    found = int8_clf.attribute([TEXTS[2], TEXTS[20]], label="negative")
    neg, pos = found
    assert neg.top() and neg.top()[0] in TEXTS[2].split()
    assert all(w > 0 for _, w in neg.ranked)
    # for the positive headline, whatever lowers P(negative) when removed is small next to the negative one's
    assert (pos.weights(1) or [0])[0] < neg.weights(1)[0]


def test_explain_matches_predict_with_explain_for_negative_texts(int8_clf):
    texts = [TEXTS[2], TEXTS[10], TEXTS[25]]
    preds = int8_clf.predict(texts, explain=True)
    explained = int8_clf.explain(texts, label="negative")
    for p, w in zip(preds, explained):
        if p.sentiment == "negative":
            # same words; the int8 scores of a variant move a little with its batch, so near ties may swap
            assert set(p.explanation) & set(w) and p.explanation[0] in w[:2]


def test_explain_refuses_unknown_labels_and_methods_and_bad_input(int8_clf):
    with pytest.raises(ValueError, match="unknown sentiment"):
        int8_clf.explain([TEXTS[0]], label="bearish")
    with pytest.raises(ValueError, match="unknown explanation method"):
        int8_clf.explain([TEXTS[0]], method="shap")
    with pytest.raises(ValueError, match=r"index\(es\) \[1\]"):
        int8_clf.explain([TEXTS[0], " "])
    with pytest.raises(ValueError, match="shape"):
        int8_clf.attribute([TEXTS[0]], sentiment_probs=np.zeros((2, 3)))
    assert int8_clf.explain([]) == []


def test_screened_method_agrees_with_occlusion_on_short_texts(int8_clf):
    short = [t for t in TEXTS if len(t.split()) <= 8][:6]
    assert int8_clf.explain(short, method="screened") == int8_clf.explain(short)


def test_unknown_backend_is_rejected(model_settings):
    from models.classifier import Classifier

    with pytest.raises(ValueError, match="unknown backend"):
        Classifier.from_settings(model_settings, backend="tpu")


def test_the_int8_decision_is_unknown_until_the_report_has_made_it(tmp_path):
    """The report measures int8 before it decides; until then asking for int8 is no warning sign."""
    import json

    from models.classifier import int8_accepted

    assert int8_accepted(tmp_path) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"version": "x"}))
    assert int8_accepted(tmp_path) is None
    for accepted in (False, True):
        (tmp_path / "metrics.json").write_text(json.dumps({"int8": {"accepted": accepted}}))
        assert int8_accepted(tmp_path) is accepted


def test_auto_backend_follows_the_int8_decision(model_settings):
    from models.backends.tensorrt_backend import availability
    from models.classifier import auto_backend, int8_accepted

    if availability() is None:
        pytest.skip("TensorRT present: auto picks tensorrt")
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: auto picks torch fp16")
    assert auto_backend(model_settings) == ("onnx-int8" if int8_accepted(model_settings.artifact_dir) else "onnx")


# -- the convenience API ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_clf():
    from models import Classifier

    return Classifier.load(threads=2)


def test_importing_models_stays_light_and_classifier_is_importable_from_it():
    code = ("import sys, models; assert 'numpy' not in sys.modules and 'models.classifier' not in sys.modules; "
            "from models import Classifier; from models.classifier import Classifier as C; assert Classifier is C")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_load_without_arguments_gives_the_default_artifact_on_onnx_int8(api_clf, model_settings):
    assert api_clf.backend == "onnx-int8"
    assert api_clf.model_version == read_config(model_settings.artifact_dir)["version"]
    assert repr(api_clf) == f"Classifier(model_version={api_clf.model_version!r}, backend='onnx-int8')"


def test_load_takes_an_artifact_path_and_a_backend_keyword(model_settings):
    from models import Classifier

    clf = Classifier.load(str(model_settings.artifact_dir), backend="onnx", threads=2)
    assert clf.backend == "onnx"


def test_load_rejects_a_directory_that_is_not_an_artifact(tmp_path):
    from models import Classifier

    with pytest.raises(FileNotFoundError, match="config.json"):
        Classifier.load(tmp_path)


def test_calling_with_a_string_gives_one_plain_dict_and_with_a_list_a_list_in_order(api_clf):
    one = api_clf(TEXTS[2])
    many = api_clf([TEXTS[2], TEXTS[10]])
    assert isinstance(one, dict) and isinstance(many, list) and len(many) == 2
    # same text, same labels; int8 activations are quantized per batch, so scores move a little
    assert (many[0]["sentiment"], many[0]["topic"]) == (one["sentiment"], one["topic"])
    assert many[0]["sentiment_scores"] == pytest.approx(one["sentiment_scores"], abs=INT8_MEDIAN_TOL)
    assert set(one) == {"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version"}
    assert one["sentiment"] == "negative" and many[1]["topic"] == "Dividend"
    assert json.loads(json.dumps(many)) == many  # plain JSON types only
    assert [t["label"] for t in one["topic_scores"]][0] == one["topic"]


def test_calling_gives_the_same_dict_as_a_classify_output_row(api_clf):
    from models.classify import classify_rows
    from models.io import Row

    assert classify_rows(api_clf, [Row(1, TEXTS[0])], explain=True) == [api_clf(TEXTS[0], explain=True)]


def test_calling_with_explain_adds_the_words_for_negative_texts(api_clf):
    neg, pos = api_clf([TEXTS[2], TEXTS[20]], explain=True)
    assert neg["explanation"] and set(neg["explanation"]) <= set(TEXTS[2].split())
    assert pos["explanation"] == []


def test_calling_cleans_the_text_as_the_stream_worker_does(api_clf):
    assert api_clf("<b>Tesla</b> shares plunge 12% https://example.com/x") == api_clf("Tesla shares plunge 12%")
    with pytest.raises(ValueError):
        api_clf("https://example.com/only-a-link")


def test_model_threads_setting_sizes_the_onnx_pool_and_an_argument_overrides_it(model_settings):
    from models import Classifier

    def sizes(clf) -> tuple[int, int]:  # (threads running passes side by side, each pass's intra-op threads)
        pool = clf._backend.pool
        return (pool._max_workers if pool else 1), clf._backend.session.get_session_options().intra_op_num_threads

    one = model_settings.model_copy(update={"threads": 1})
    assert sizes(Classifier.from_settings(one, backend="onnx-int8")) == (1, 1)  # e.g. two workers on two cores
    assert sizes(Classifier.from_settings(one, backend="onnx-int8", threads=2)) == (2, 1)


def test_passes_side_by_side_give_the_predictions_of_one_pass_at_a_time(model_settings):
    from models import Classifier
    from models.backends.onnx_backend import OnnxBackend

    side = Classifier.from_settings(model_settings, backend="onnx-int8", threads=2)
    assert side._backend.pool is not None
    one_at_a_time = Classifier(OnnxBackend(side._backend.model_path, "onnx-int8", 2, side_by_side=False),
                               side.tokenizer, side.labels, side.model_version, side.max_length, side.batch_size,
                               side.max_tokens, side.temperatures)
    texts = TEXTS * 3  # several passes per call
    a, b = side.predict(texts), one_at_a_time.predict(texts)
    assert [(p.sentiment, p.topic) for p in a] == [(p.sentiment, p.topic) for p in b]
    for p, q in zip(a, b):
        assert p.sentiment_scores == pytest.approx(q.sentiment_scores, abs=0.02)