"""Row files of `marketpulse classify`: formats, 1-based line numbers, column checks, chunked reading
and the writers' shapes."""
from __future__ import annotations

import csv
import json

import pytest

from models.io import (Columns, DataFormat, InputError, NoRows, RecordWriter, csv_columns, model_input,
                       open_rows, resolve_format, row_problem)


def read_all(path, fmt, columns=Columns(), size=512):
    with open_rows(str(path), fmt, columns) as src:
        return [r for chunk in src.chunks(size) for r in chunk]


def test_csv_rows_carry_their_file_line_the_first_data_row_being_line_2(tmp_path):
    p = tmp_path / "in.csv"
    # a quoted field spanning two lines and a blank line shift the following rows' lines
    p.write_text('id,text\n1,"Fed holds rates, signals cuts"\n2,"two\nlines"\n\n3,"$TSLA up 5%"\n4,\n')
    rows = read_all(p, DataFormat.csv, Columns(id="id"))
    assert [(r.line, r.id, r.text) for r in rows] == [
        (2, "1", "Fed holds rates, signals cuts"), (3, "2", "two\nlines"), (6, "3", "$TSLA up 5%"), (7, "4", "")]


def test_tsv_is_read_with_tabs(tmp_path):
    p = tmp_path / "in.tsv"
    p.write_text("text\tid\nOil jumps, again\tx\n")
    assert [(r.text, r.id) for r in read_all(p, DataFormat.tsv, Columns(id="id"))] == [("Oil jumps, again", "x")]


def test_csv_without_the_text_column_is_an_input_error_listing_the_columns(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("id,body\n1,hello\n")
    with pytest.raises(InputError, match=r"no 'text' column \(columns: id, body\)"):
        open_rows(str(p), DataFormat.csv)


def test_csv_without_the_requested_id_column_is_an_input_error(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("text\nhello\n")
    with pytest.raises(InputError, match="'uid'"):
        open_rows(str(p), DataFormat.csv, Columns(id="uid"))


@pytest.mark.parametrize("content", ["", "\n\n", "id,text\n", "id,text\n\n"])
def test_csv_empty_or_header_only_has_no_rows(tmp_path, content):
    p = tmp_path / "in.csv"
    p.write_text(content)
    with pytest.raises(NoRows, match="no rows"):
        read_all(p, DataFormat.csv)


def test_jsonl_rows_carry_their_line_and_unreadable_lines_become_row_problems(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"text": "Oil jumps", "id": 7}\n\n{not json\n[1, 2]\n{"id": 2}\n{"text": 5}\n{"text": "  "}\n')
    rows = read_all(p, DataFormat.jsonl, Columns(id="id"))
    assert [r.line for r in rows] == [1, 3, 4, 5, 6, 7]  # the blank line 2 is not a row
    assert (rows[0].text, rows[0].id, rows[0].problem) == ("Oil jumps", 7, None)
    assert "invalid JSON" in rows[1].problem
    assert rows[2].problem == "not a JSON object"
    assert rows[3].problem == "no 'text' field" and rows[3].id == 2
    assert rows[4].text == 5 and rows[5].text == "  "


def test_jsonl_whose_first_chunk_has_no_text_field_is_an_input_error(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"body": "x"}\n{"body": "y"}\n')
    with pytest.raises(InputError, match="no 'text' field in the first 2 rows"):
        read_all(p, DataFormat.jsonl)
    assert read_all(p, DataFormat.jsonl, Columns(text="body"))[1].text == "y"


def test_chunks_hold_at_most_the_chunk_size(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(7)))
    with open_rows(str(p), DataFormat.jsonl) as src:
        assert [len(c) for c in src.chunks(3)] == [3, 3, 1]


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_rows(str(tmp_path / "nope.csv"), DataFormat.csv)


@pytest.mark.parametrize("path,given,want", [
    ("a.csv", None, "csv"), ("a.TSV", None, "tsv"), ("a.jsonl", None, "jsonl"), ("a.ndjson", None, "jsonl"),
    ("a.parquet", None, "parquet"), ("-", None, "jsonl"), ("-", "csv", "csv"), ("a.txt", "jsonl", "jsonl")])
def test_format_comes_from_the_flag_else_the_extension_and_stdio_defaults_to_jsonl(path, given, want):
    assert resolve_format(path, given, "--format") == DataFormat(want)


def test_unknown_extension_without_a_format_flag_is_rejected():
    with pytest.raises(InputError, match="--output-format"):
        resolve_format("out.txt", None, "--output-format")


@pytest.mark.parametrize("text,problem", [(None, "missing"), ("", "empty"), (" \t\n", "whitespace"),
                                          (5, "not a string"), ("ok", None)])
def test_row_problem(text, problem):
    got = row_problem(text)
    assert (got is None) if problem is None else (problem in got)


def test_model_input_cleans_and_puts_the_title_first_like_the_stream_worker():
    assert model_input("Shares plunge <b>after</b> miss https://x.co/a", "Tesla") == "Tesla. Shares plunge after miss"
    assert model_input("Tesla: shares plunge", "Tesla") == "Tesla: shares plunge"  # title already leads
    assert model_input("https://x.co/a") == ""


RECORDS = [
    {"id": "a", "sentiment": "negative", "sentiment_scores": {"negative": 0.9, "neutral": 0.08, "positive": 0.02},
     "topic": "Stock Movement", "topic_scores": [{"label": "Stock Movement", "score": 0.7},
                                                 {"label": "Markets", "score": 0.2}],
     "model_version": "m1", "explanation": ["plunge", "miss"]},
    {"id": "b", "line": 3, "error": "line 3: missing text"},
]


def test_csv_writer_flattens_scores_and_leaves_error_rows_blank_but_for_line_and_error(tmp_path):
    out = tmp_path / "o.csv"
    w = RecordWriter(str(out), DataFormat.csv, with_id=True, explain=True)
    w.write(RECORDS)
    w.close()
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == csv_columns(("negative", "neutral", "positive"), True, True)
    assert rows[0]["sentiment_score_negative"] == "0.9" and rows[0]["topic_score"] == "0.7"
    assert rows[0]["explanation"] == "plunge miss" and rows[0]["line"] == rows[0]["error"] == ""
    assert rows[1]["id"] == "b" and rows[1]["line"] == "3" and rows[1]["sentiment"] == ""


def test_writer_writes_under_a_temporary_name_until_closed_and_abort_leaves_nothing(tmp_path):
    out = tmp_path / "sub" / "o.jsonl"
    w = RecordWriter(str(out), DataFormat.jsonl, with_id=True)
    w.write(RECORDS[:1])
    assert not out.exists() and (tmp_path / "sub" / "o.jsonl.tmp").stat().st_size > 0
    w.close()
    assert [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()] == RECORDS[:1]
    w = RecordWriter(str(tmp_path / "p.jsonl"), DataFormat.jsonl)
    w.write(RECORDS)
    w.abort()
    assert list(tmp_path.iterdir()) == [tmp_path / "sub"]


def test_parquet_writer_keeps_nested_scores(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "o.parquet"
    w = RecordWriter(str(out), DataFormat.parquet, with_id=True, explain=True)
    w.write(RECORDS[:1])
    w.write(RECORDS[1:])
    w.close()
    got = pq.read_table(out).to_pylist()
    assert got[0] == {**RECORDS[0], "line": None, "error": None}
    assert got[1]["error"] == "line 3: missing text" and got[1]["sentiment_scores"] is None
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # one per write: written as it goes
