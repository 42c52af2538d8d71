"""Event schemas: what producers may send and what workers emit."""
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketpulse.schemas import LabeledEvent, RawEvent, stable_id

REPO = Path(__file__).resolve().parents[2]
RAW = dict(id="n-1", source="news", source_name="wire", published_at="2026-11-23T10:00:00Z",
           text="Tesla shares fall after recall", title="Tesla recall", url="https://example.com/a")


def test_raw_event_accepts_a_minimal_record_and_defaults_to_utc():
    e = RawEvent(id="x", source="social", source_name="s", published_at="2026-01-02T03:04:05", text="hi")
    assert e.published_at.tzinfo is not None and e.lang == "en"


@pytest.mark.parametrize("bad", [
    {"text": "   "}, {"text": ""}, {"source": "blog"}, {"published_at": "yesterday"},
    {"id": ""}, {"text": "a\x00b"}, {"unexpected": 1},
    {"id": "\u00e9" * 129},  # 258 UTF-8 bytes: "source:id" must fit Elasticsearch's 512-byte _id
    {"published_at": "0001-01-01T00:00:00+14:00"},  # no UTC time exists for it
])
def test_raw_event_rejects_invalid_fields(bad):
    with pytest.raises(ValidationError):
        RawEvent(**{**RAW, **bad})


def test_labeled_event_carries_raw_fields_and_a_deterministic_doc_id():
    e = LabeledEvent(**RAW, sentiment="negative", sentiment_scores={"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                     topic="Company | Product News", topic_scores=[{"label": "Company | Product News", "score": 0.8}],
                     model_version="v1")
    assert e.doc_id == "news:n-1"
    assert LabeledEvent.model_validate_json(e.model_dump_json()) == e


def test_stable_id_depends_on_source_and_url_or_text():
    assert stable_id("news", "https://x/1", "a") == stable_id("news", "https://x/1", "b")
    assert stable_id("news", None, "same  text") == stable_id("news", None, "same text")
    assert stable_id("news", None, "t") != stable_id("social", None, "t")


def test_exported_json_schemas_are_current():
    for model in (RawEvent, LabeledEvent):
        path = REPO / "docs" / "schemas" / f"{model.__name__}.schema.json"
        assert json.loads(path.read_text()) == model.model_json_schema(), (
            f"{path} is stale: run `marketpulse schemas export`")
