"""`marketpulse explain`: texts as arguments or rows of a file/stdin in, JSONL records with the scores
and the words that explain them out; bad input exits 2 before the model loads, bad rows exit 4."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from models.explain import METHODS

FAST = ["--backend", "onnx-int8"]
NEG, POS = "Tesla shares plunge after weak deliveries", "Nike reports record quarterly revenue, raises full-year outlook"
KEYS = {"text", "sentiment", "sentiment_scores", "topic", "topic_scores", "model_version", "explained", "explanation",
        "explanation_weights"}


def run(args, stdin=None):
    return CliRunner().invoke(app, ["explain", *args, *FAST], input=stdin)


def records(res):
    return [json.loads(l) for l in res.stdout.splitlines()]


@pytest.fixture
def model_must_not_load(monkeypatch):
    from models.classifier import Classifier

    def refuse(*a, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Classifier, "from_settings", classmethod(refuse))


def test_texts_as_arguments_each_get_their_own_sentiment_explained(int8_clf):
    res = run([NEG, POS])
    assert res.exit_code == 0, res.output
    neg, pos = records(res)
    assert set(neg) == set(pos) == KEYS
    assert (neg["sentiment"], neg["explained"]) == ("negative", "negative")
    assert (pos["sentiment"], pos["explained"]) == ("positive", "positive")
    for r, text in ((neg, NEG), (pos, POS)):
        assert r["text"] == text
        assert 1 <= len(r["explanation"]) <= 5 and set(r["explanation"]) <= set(text.split())
        assert len(r["explanation_weights"]) == len(r["explanation"])
        assert r["explanation_weights"] == sorted(r["explanation_weights"], reverse=True)
        assert all(w > 0 for w in r["explanation_weights"])
    assert neg["explanation"][0] == int8_clf.explain([NEG])[0][0]  # what the Python call says
    assert "2 of 2 texts explained" in res.stderr


def test_label_explains_one_sentiment_for_every_text_and_top_k_limits_the_words():
    res = run([NEG, POS, "--label", "negative", "--top-k", "1"])
    assert res.exit_code == 0, res.output
    neg, pos = records(res)
    assert neg["explained"] == pos["explained"] == "negative"
    assert pos["sentiment"] == "positive"  # the scores are still the text's own
    assert len(neg["explanation"]) == 1 and len(pos["explanation"]) <= 1


def test_input_file_carries_ids_cleans_texts_and_reports_bad_rows_with_exit_4(tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in [
        {"uid": "a", "body": f"<b>{NEG}</b> https://example.com/x"}, {"uid": "b", "body": "  "},
        {"uid": "c", "body": POS}]))
    res = run(["-i", str(inp), "--text-column", "body", "--id-column", "uid", "--method", "screened"])
    assert res.exit_code == 4, res.output
    a, b, c = records(res)
    assert (a["id"], a["text"]) == ("a", NEG)  # cleaned as the stream worker cleans it
    assert a["explanation"] and set(a["explanation"]) <= set(NEG.split())
    assert b == {"id": "b", "line": 2, "error": "line 2: empty or whitespace-only text"}
    assert c["id"] == "c" and c["explained"] == "positive"
    assert "1 of 3 rows failed (first: line 2: empty or whitespace-only text)" in res.stderr


def test_csv_from_stdin():
    res = run(["-i", "-", "-f", "csv"], stdin=f"text\n{NEG}\n")
    assert res.exit_code == 0, res.output
    [r] = records(res)
    assert r["sentiment"] == "negative" and r["explanation"]


@pytest.mark.parametrize("args,stdin,message", [
    ([], None, "no texts: give them as arguments, or --input FILE"),
    ([NEG, "-i", "{tmp}/in.csv"], None, "not both"),
    (["-i", "{tmp}/missing.csv"], None, "does not exist"),
    (["-i", "{tmp}/in.csv", "--text-column", "body"], None, "no 'body' column"),
    (["-i", "{tmp}/empty.csv"], None, "no rows"),
    (["-i", "-"], "", "<stdin>: no rows"),
    (["-i", "{tmp}/in.txt"], None, "cannot tell the format"),
])
def test_bad_input_is_one_error_line_and_exit_2_before_the_model_loads(tmp_path, model_must_not_load, args, stdin,
                                                                        message):
    (tmp_path / "in.csv").write_text(f"text\n{NEG}\n")
    (tmp_path / "empty.csv").write_text("text\n")
    (tmp_path / "in.txt").write_text(NEG)
    res = run([a.format(tmp=tmp_path) for a in args], stdin=stdin)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and message in res.stderr
    assert res.stderr.count("\n") == 1 and res.stdout == ""


@pytest.mark.parametrize("args", [["x", "--label", "bearish"], ["x", "--method", "shap"], ["x", "--top-k", "0"]])
def test_bad_options_exit_2(model_must_not_load, args):
    res = run(args)
    assert res.exit_code == 2 and res.stderr.startswith("error: ")


def test_help_lists_the_methods_of_models_explain(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    res = CliRunner().invoke(app, ["explain", "--help"])
    assert res.exit_code == 0
    assert "|".join(METHODS) in res.output and "negative|neutral|positive" in res.output
    assert "4 some rows failed" in res.output
