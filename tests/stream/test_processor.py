"""BatchProcessor without a broker: raw records in, each comes out exactly once (labeled or
dead-lettered with its reason), and a replay's rescoring labels what the worker labeled."""
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from consumers.replay.rescore import rescore
from marketpulse import wire
from marketpulse.schemas import RawEvent
from marketpulse.settings import ModelSettings, Settings
from marketpulse.wire import InRecord
from stream.processor import BatchProcessor

T0 = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
SETTINGS = Settings(model=ModelSettings(explain_negative=False))


@pytest.fixture(scope="module")
def classifier():
    from models.classifier import Classifier

    return Classifier.from_settings(SETTINGS.model, backend="onnx-int8", threads=2)


def raw_record(offset: int, **kw) -> InRecord:
    ev = RawEvent(**{"id": f"n-{offset}", "source": "news", "source_name": "Reuters", "published_at": T0, **kw})
    out = wire.encode_raw(ev, "marketpulse.raw.news")
    return InRecord(out.value, out.key, out.topic, 0, offset, out.headers)


# News items whose title adds to the text and whose text carries links: the title and the URLs
# change what the model sees, so a rescoring that built its own text would disagree.
NEWS = [
    dict(title="Tesla recalls 2 million cars", text="Regulators cite autopilot defects https://t.co/x1 more at www.reuters.com"),
    dict(title="Apple beats estimates", text="Record iPhone sales lift revenue. https://apple.com/ir"),
    dict(title="Bank fined $2bn", text="The lender admitted to misconduct over a decade"),
    dict(title=None, text="$NVDA guidance raised again, shares jump https://nvda.com"),
    dict(title="Oil slides as demand fears grow", text="Brent fell 4% on Monday"),
]


def test_every_record_is_labeled_or_dead_lettered_exactly_once(classifier):
    records = [raw_record(i, **n) for i, n in enumerate(NEWS)]
    records += [InRecord(b"{broken", b"k", "marketpulse.raw.news", 0, 100),
                InRecord(json.dumps({"id": "x", "source": "news"}).encode(), b"x", "marketpulse.raw.news", 0, 101),
                raw_record(102, title=None, text="<p> https://only.a/link </p>")]
    result = BatchProcessor(SETTINGS, classifier).process(records)
    assert [e.id for e in result.labeled] == [f"n-{i}" for i in range(len(NEWS))]
    dead = [json.loads(r.value) for r in result.deadletters]
    assert [(d["source"]["offset"], d["reason"]) for d in dead] == [(100, "not_json"), (101, "schema"), (102, "empty_text")]
    outs = result.out_records("marketpulse.events")
    assert len(outs) == len(records)
    assert {dict(o.headers)[wire.SCHEMA_HEADER].decode().split("/")[0] for o in outs} == {"labeled-event", "dead-letter"}


def test_rescoring_stored_events_reproduces_the_live_labels(classifier):
    records = [raw_record(i, **n) for i, n in enumerate(NEWS)]
    live = BatchProcessor(SETTINGS, classifier).process(records).labeled
    again = rescore(live, classifier)
    for a, b in zip(live, again):
        assert (a.sentiment, a.topic) == (b.sentiment, b.topic), a.id
        assert np.allclose([a.sentiment_scores[k] for k in sorted(a.sentiment_scores)],
                           [b.sentiment_scores[k] for k in sorted(b.sentiment_scores)], atol=1e-6), a.id
        assert [t.label for t in a.topic_scores] == [t.label for t in b.topic_scores]


def test_a_record_dated_beyond_the_future_skew_is_dead_lettered_and_one_slightly_ahead_is_labeled(classifier):
    from datetime import timedelta

    now = datetime.now(timezone.utc)
    records = [raw_record(0, text="Tesla recalls cars", published_at=now + timedelta(days=1)),
               raw_record(1, text="Tesla recalls cars", published_at=now + timedelta(seconds=60))]
    result = BatchProcessor(SETTINGS, classifier).process(records)
    assert [e.id for e in result.labeled] == ["n-1"]
    [dl] = [json.loads(r.value) for r in result.deadletters]
    assert dl["reason"] == "future_dated" and dl["source"]["offset"] == 0 and "max_future_skew_s" in dl["detail"]


class Spy:
    """The classifier, with the ``explain`` argument of every call recorded."""

    def __init__(self, clf):
        self.clf, self.model_version, self.explain_args = clf, clf.model_version, []

    def predict(self, texts, explain=False):
        self.explain_args.append(explain)
        return self.clf.predict(texts, explain=explain)


def test_by_default_the_worker_classifies_only_and_events_keep_an_empty_explanation(classifier):
    assert Settings().model.explain_negative is False
    spy = Spy(classifier)
    result = BatchProcessor(Settings(), spy).process([raw_record(i, **n) for i, n in enumerate(NEWS)])
    assert spy.explain_args == [False]
    assert any(e.sentiment == "negative" for e in result.labeled)
    assert all(e.explanation == [] for e in result.labeled)
    # the field stays on the wire, empty, so the events topic and index keep one shape
    assert all(json.loads(o.value)["explanation"] == [] for o in result.out_records("marketpulse.events"))


def test_with_explain_negative_on_every_negative_event_carries_the_words_of_its_model_text(classifier):
    from marketpulse.text import event_model_text

    spy = Spy(classifier)
    result = BatchProcessor(Settings(model=ModelSettings(explain_negative=True)), spy).process(
        [raw_record(i, **n) for i, n in enumerate(NEWS)])
    assert spy.explain_args == [True]
    negative = [e for e in result.labeled if e.sentiment == "negative"]
    assert negative
    for e in result.labeled:
        if e.sentiment != "negative":
            assert e.explanation == []
            continue
        assert 1 <= len(e.explanation) <= 5 and set(e.explanation) <= set(event_model_text(e).split())
