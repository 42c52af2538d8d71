"""`marketpulse classify` as a data tool: stdin/stdout, CSV/JSONL/Parquet in and out, ids carried,
errors with their 1-based file line, exit codes 2 and 4, streaming chunk by chunk."""
from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.schemas import TopicScore
from marketpulse.text import clean_optional, clean_text, model_text
from models.classify import classify_rows
from models.io import RecordWriter, Row, RowSource

TEXTS = ["Fed raises rates by 75 basis points", "Tesla shares plunge after weak deliveries",
         "JPMorgan raises dividend to $1.05 per share", "Oil jumps as OPEC+ cuts output"]
LABELED_KEYS = {"sentiment", "sentiment_scores", "topic", "topic_scores", "model_version"}
FAST = ["--backend", "onnx-int8"]


def run(args, stdin=None):
    return CliRunner().invoke(app, ["classify", *args, *FAST], input=stdin)


def jsonl(path):
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]


def write_csv(path, rows, header=("id", "text")):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def assert_labeled(record):
    """The scores are shaped like LabeledEvent's."""
    assert LABELED_KEYS <= set(record)
    assert list(record["sentiment_scores"]) == ["negative", "neutral", "positive"]
    assert record["sentiment"] == max(record["sentiment_scores"], key=record["sentiment_scores"].get)
    tops = [TopicScore(**t) for t in record["topic_scores"]]
    assert len(tops) == 3 and tops[0].label == record["topic"]


@pytest.fixture
def model_must_not_load(monkeypatch):
    from models.classifier import Classifier

    def refuse(*a, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Classifier, "from_settings", classmethod(refuse))


def test_classify_rows_keeps_order_and_reports_bad_rows_with_their_line(int8_clf):
    rows = [Row(2, TEXTS[0], "a"), Row(3, "", "b"), Row(5, TEXTS[1], "c"), Row(6, None, "d"),
            Row(7, "x", "e", problem="invalid JSON (boom)"), Row(8, "https://example.com/only-a-link", "f")]
    out = classify_rows(int8_clf, rows, with_id=True)
    assert [r["id"] for r in out] == ["a", "b", "c", "d", "e", "f"]
    assert out[1] == {"id": "b", "line": 3, "error": "line 3: empty or whitespace-only text"}
    assert out[3]["error"] == "line 6: missing text"
    assert out[4]["error"] == "line 7: invalid JSON (boom)"
    assert out[5]["error"] == "line 8: no text left after removing markup and URLs"
    good = int8_clf.predict([TEXTS[0], TEXTS[1]])
    assert [out[i]["sentiment"] for i in (0, 2)] == [p.sentiment for p in good]
    assert [out[i]["topic"] for i in (0, 2)] == [p.topic for p in good]


def test_dash_reads_stdin_and_writes_stdout_leaving_stdout_to_the_data():
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:2])
    res = run(["-i", "-", "-o", "-"], stdin=stdin)
    assert res.exit_code == 0, res.output
    rows = [json.loads(l) for l in res.stdout.splitlines()]  # stdout holds nothing but the rows
    assert len(rows) == 2
    for r in rows:
        assert_labeled(r)
    assert "2 rows -> <stdout>" in res.stderr


def test_stdin_as_csv_with_format_flag_to_stdout_as_csv():
    res = run(["-i", "-", "-f", "csv", "-o", "-", "--output-format", "csv"], stdin="text\n" + TEXTS[0] + "\n")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 1 and rows[0]["sentiment"] in ("negative", "neutral", "positive")


def test_csv_in_csv_out_carries_the_id_and_flattens_the_scores(tmp_path):
    inp, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_csv(inp, [(f"n-{i}", t) for i, t in enumerate(TEXTS)])
    res = run(["-i", str(inp), "-o", str(out), "--id-column", "id"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == [f"n-{i}" for i in range(len(TEXTS))]
    assert list(rows[0]) == ["id", "sentiment", "sentiment_score_negative", "sentiment_score_neutral",
                             "sentiment_score_positive", "topic", "topic_score", "model_version", "line", "error"]
    for r in rows:
        scores = {k: float(r[f"sentiment_score_{k}"]) for k in ("negative", "neutral", "positive")}
        assert r["sentiment"] == max(scores, key=scores.get) and 0 < float(r["topic_score"]) <= 1
        assert r["error"] == ""


def test_jsonl_in_jsonl_out_shaped_like_labeled_event(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"uid": i, "body": t}) + "\n" for i, t in enumerate(TEXTS)))
    res = run(["-i", str(inp), "-o", str(out), "--text-column", "body", "--id-column", "uid", "--explain"])
    assert res.exit_code == 0, res.output
    rows = jsonl(out)
    assert [r["id"] for r in rows] == [0, 1, 2, 3]  # JSON ids keep their type
    for r in rows:
        assert_labeled(r)
        assert set(r) == LABELED_KEYS | {"id", "explanation"}
    assert rows[1]["sentiment"] == "negative" and rows[1]["explanation"]


def test_parquet_round_trip_keeps_ids_and_nested_scores(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    inp, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(pa.table({"id": pa.array([10, 11, 12], pa.int64()), "text": [TEXTS[0], None, TEXTS[2]]}), inp)
    res = run(["-i", str(inp), "-o", str(out), "--id-column", "id"])
    assert res.exit_code == 4, res.output  # the null text
    table = pq.read_table(out)
    assert table.schema.field("id").type == pa.int64()
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [10, 11, 12]
    assert_labeled(rows[0]) and assert_labeled(rows[2])
    assert rows[1]["error"] == "row 2: missing text" and rows[1]["line"] == 2


def test_title_column_is_put_before_the_text_as_the_stream_worker_does(tmp_path, int8_clf):
    inp, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    title, text = "Tesla recalls 2 million vehicles", "Shares fell <b>4%</b> https://example.com/x"
    write_csv(inp, [(title, text)], header=("headline", "text"))
    res = run(["-i", str(inp), "-o", str(out), "--title-column", "headline", "--batch-size", "1"])
    assert res.exit_code == 0, res.output
    expected = int8_clf.predict([model_text(clean_text(text), clean_optional(title))])[0].to_dict()
    got = jsonl(out)[0]
    assert got["sentiment"] == expected["sentiment"] and got["topic"] == expected["topic"]
    assert got["sentiment_scores"] == pytest.approx(expected["sentiment_scores"], abs=1e-5)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_bad_rows_report_their_1_based_file_line_and_exit_4_while_the_others_are_written(tmp_path, fmt):
    inp, out = tmp_path / f"in.{fmt}", tmp_path / "out.jsonl"
    texts = [TEXTS[0], "   ", TEXTS[1]]
    if fmt == "csv":  # header is line 1, so the blank text is on line 3
        write_csv(inp, [(i, t) for i, t in enumerate(texts)])
        bad_line = 3
    else:  # line 1 is the first row; the blank line 2 is skipped, so the blank text is on line 3
        inp.write_text(json.dumps({"id": 0, "text": texts[0]}) + "\n\n"
                       + "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts[1:], 1)))
        bad_line = 3
    res = run(["-i", str(inp), "-o", str(out), "--id-column", "id"])
    assert res.exit_code == 4, res.output
    assert f"1 of 3 rows failed (first: line {bad_line}: empty or whitespace-only text)" in res.stderr
    rows = jsonl(out)
    assert len(rows) == 3
    assert rows[1] == {"id": rows[1]["id"], "line": bad_line, "error": f"line {bad_line}: empty or whitespace-only text"}
    assert_labeled(rows[0]) and assert_labeled(rows[2])


@pytest.mark.parametrize("name,content", [("empty.csv", ""), ("header-only.csv", "id,text\n"),
                                          ("empty.jsonl", ""), ("blank.jsonl", "\n\n")])
def test_empty_or_header_only_file_exits_2_with_one_line_and_the_model_is_not_loaded(
        tmp_path, model_must_not_load, name, content):
    inp, out = tmp_path / name, tmp_path / "out.jsonl"
    inp.write_text(content)
    res = run(["-i", str(inp), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert res.stderr == f"error: {inp}: no rows\n"
    assert not out.exists()


def test_empty_stdin_exits_2_naming_stdin(model_must_not_load):
    res = run(["-i", "-", "-o", "-"], stdin="")
    assert res.exit_code == 2 and res.stderr == "error: <stdin>: no rows\n"


@pytest.mark.parametrize("args,message", [
    (["--id-column", "uid"], "no 'uid' column (columns: id, text)"),
    (["--text-column", "body"], "no 'body' column"),
    (["-o", "{tmp}/out.txt"], "--output-format"),
    (["-i", "{tmp}/missing.csv"], "does not exist"),
])
def test_bad_input_exits_2_before_loading_the_model(tmp_path, model_must_not_load, args, message):
    inp = tmp_path / "in.csv"
    write_csv(inp, [("1", TEXTS[0])])
    args = [a.format(tmp=tmp_path) for a in args]
    base = ["-i", str(inp), "-o", str(tmp_path / "out.jsonl")]
    for flag in ("-i", "-o"):  # an override replaces the base option
        if flag in args:
            j = base.index(flag)
            del base[j : j + 2]
    res = run(base + args)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and message in res.stderr


def test_help_lists_the_backend_and_format_choices(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that rich does not wrap a choice list
    res = CliRunner().invoke(app, ["classify", "--help"])
    assert res.exit_code == 0
    for choice in ("auto|torch|onnx|onnx-int8|tensorrt", "csv|tsv|jsonl|parquet"):
        assert choice in res.output
    assert "4 some rows failed" in res.output
    assert CliRunner().invoke(app, ["classify", "-i", "-", "-o", "-", "--backend", "tpu"]).exit_code == 2


def test_three_chunks_give_the_same_output_as_one_and_each_chunk_is_written_before_the_next_is_read(
        tmp_path, monkeypatch):
    inp = tmp_path / "in.jsonl"
    texts = TEXTS + [t.upper() for t in TEXTS] + TEXTS[:2]  # 10 rows: chunks of 4, 4, 2
    inp.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    # --batch-size 1: int8 activations are quantized per batch, so equal batches are what make the
    # outputs comparable byte for byte whatever the chunking
    common = ["-i", str(inp), "--id-column", "id", "--batch-size", "1"]
    whole = run(common + ["-o", str(tmp_path / "whole.jsonl")])
    assert whole.exit_code == 0, whole.output

    events = []
    real_chunks, real_write = RowSource.chunks, RecordWriter.write

    def chunks(self, size):
        for c in real_chunks(self, size):
            events.append(("read", len(c)))
            yield c

    def write(self, records):
        events.append(("write", len(records)))
        real_write(self, records)

    monkeypatch.setattr(RowSource, "chunks", chunks)
    monkeypatch.setattr(RecordWriter, "write", write)
    chunked = run(common + ["-o", str(tmp_path / "chunked.jsonl"), "--chunk-size", "4"])
    assert chunked.exit_code == 0, chunked.output
    assert events == [("read", 4), ("write", 4), ("read", 4), ("write", 4), ("read", 2), ("write", 2)]
    assert (tmp_path / "chunked.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
