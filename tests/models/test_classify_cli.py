"""`marketpulse classify`: one JSON object per input row, in order, with per-row errors."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from models.classify import classify_texts

ROWS = ["Fed raises rates by 75 basis points", "", "Tesla shares plunge after weak deliveries", "   ",
        "JPMorgan raises dividend to $1.05 per share"]


def test_classify_texts_keeps_order_and_reports_bad_rows(onnx_clf):
    out = classify_texts(onnx_clf, ROWS + [None], chunk=2)  # chunk < rows: exercises chunking
    assert len(out) == 6
    for i in (1, 3, 5):
        assert set(out[i]) == {"row", "error"} and out[i]["row"] == i and str(i) in out[i]["error"]
    good = onnx_clf.predict([ROWS[0], ROWS[2], ROWS[4]])
    assert [out[i]["sentiment"] for i in (0, 2, 4)] == [p.sentiment for p in good]
    assert [out[i]["topic"] for i in (0, 2, 4)] == [p.topic for p in good]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_writes_one_object_per_row(tmp_path, fmt):
    inp = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        inp.write_text("text\n" + "".join(f'"{t}"\n' for t in ROWS))
    else:
        inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in ROWS))
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["classify", "--input", str(inp), "--output", str(out),
                                   "--backend", "onnx", "--batch-size", "2", "--explain"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(rows) == len(ROWS)
    assert "error" in rows[1] and rows[1]["row"] == 1 and "error" in rows[3]
    for r in (rows[0], rows[2], rows[4]):
        assert set(r) == {"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version", "explanation"}
        assert len(r["topic_scores"]) == 3 and r["topic_scores"][0][0] == r["topic"]
    assert rows[2]["sentiment"] == "negative" and rows[2]["explanation"]


def test_cli_rejects_file_without_text_column(tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text("body\nhello\n")
    res = CliRunner().invoke(app, ["classify", "--input", str(inp), "--output", str(tmp_path / "o.jsonl"),
                                   "--backend", "onnx"])
    assert res.exit_code == 2
    assert "text" in res.output
