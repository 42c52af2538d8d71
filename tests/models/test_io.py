"""Input reader for `marketpulse classify` and JSONL writer."""
from __future__ import annotations

import json

import pytest

from models.io import InputError, read_texts, row_problem, write_jsonl


def test_csv_text_column_in_file_order(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text('id,text\n1,"Fed holds rates, signals cuts"\n2,\n3,"$TSLA up 5%"\n')
    assert read_texts(p) == ["Fed holds rates, signals cuts", "", "$TSLA up 5%"]


def test_csv_without_text_column_is_an_input_error(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("id,body\n1,hello\n")
    with pytest.raises(InputError, match="text"):
        read_texts(p)


def test_jsonl_text_field_missing_or_non_string_rows_become_none(tmp_path):
    p = tmp_path / "in.jsonl"
    rows = [{"text": "Oil jumps"}, {"id": 2}, {"text": 5}, {"text": "  "}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_texts(p) == ["Oil jumps", None, None, "  "]


def test_jsonl_invalid_line_names_the_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(InputError, match=":2:"):
        read_texts(p)


def test_jsonl_without_any_text_field_is_an_input_error(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"body": "x"}\n')
    with pytest.raises(InputError):
        read_texts(p)


def test_unknown_extension_is_rejected(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("hello\n")
    with pytest.raises(InputError, match="unsupported"):
        read_texts(p)


@pytest.mark.parametrize("text,problem", [(None, "missing"), ("", "empty"), (" \t\n", "whitespace"), ("ok", None)])
def test_row_problem(text, problem):
    got = row_problem(text)
    assert (got is None) if problem is None else (problem in got)


def test_write_jsonl_one_object_per_line(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    assert write_jsonl(out, [{"a": 1}, {"b": "é"}]) == 2
    assert [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()] == [{"a": 1}, {"b": "é"}]
