"""Top-event explanations of alerts: the model loaded at the first alert that needs it, one batched
call per alert, the text shown explained, and an alert unchanged (never lost) when that fails."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from consumers import alert_explainer
from consumers.alert_explainer import TopEventExplainer
from marketpulse.schemas import Alert, TopEvent
from marketpulse.settings import AlertSettings, Settings

T = datetime(2024, 1, 9, 15, tzinfo=timezone.utc)
SETTINGS = Settings()


def alert(*texts: str) -> Alert:
    return Alert(id="a1", key="ticker:AAPL", key_type="ticker", window_start=T, window_end=T, observed=9, expected=1,
                 score=6, severity="warning", es_query={}, drilldown="",
                 top_events=[TopEvent(id=f"e{i}", source="news", source_name="wire", text=t, weight=1,
                                      published_at=T) for i, t in enumerate(texts)])


class FakeClassifier:
    """Explains a text by its words that contain 'fall' or 'fraud', in text order."""

    def __init__(self):
        self.calls: list[tuple[list[str], int, str | None]] = []

    def explain(self, texts, top_k=5, *, label=None):
        self.calls.append((list(texts), top_k, label))
        return [[w for w in t.split() if "fall" in w or "fraud" in w][:top_k] for t in texts]


def counted(clf):
    loads = []

    def load():
        loads.append(1)
        return clf

    return load, loads


def test_each_top_event_gets_the_words_of_its_own_text_in_one_call_for_negative():
    clf = FakeClassifier()
    load, loads = counted(clf)
    out = TopEventExplainer(SETTINGS, load)(alert("AAPL shares fall", "fraud probe widens", "AAPL shares fall"))
    assert [e.explanation for e in out.top_events] == [["fall"], ["fraud"], ["fall"]]
    assert clf.calls == [(["AAPL shares fall", "fraud probe widens"], 5, "negative")]  # one call, each text once
    assert loads == [1]
    assert [e.text for e in out.top_events] == ["AAPL shares fall", "fraud probe widens", "AAPL shares fall"]


def test_the_model_is_loaded_only_when_an_alert_has_events_to_explain_and_only_once():
    clf = FakeClassifier()
    load, loads = counted(clf)
    explain = TopEventExplainer(SETTINGS, load)
    assert explain(alert()) == alert() and loads == []
    explain(alert("shares fall"))
    explain(alert("fraud charges"))
    assert loads == [1] and len(clf.calls) == 2


def test_texts_already_explained_are_not_explained_again():
    clf = FakeClassifier()
    explain = TopEventExplainer(SETTINGS, lambda: clf)
    explain(alert("shares fall", "fraud charges"))
    escalated = explain(alert("fraud charges", "prices fall further"))  # an escalation repeats events
    assert clf.calls[1][0] == ["prices fall further"]
    assert [e.explanation for e in escalated.top_events] == [["fraud"], ["fall"]]


def test_a_model_that_cannot_load_leaves_alerts_unchanged_with_one_warning(caplog):
    attempts = []

    def broken():
        attempts.append(1)
        raise FileNotFoundError("models/build/x/model.int8.onnx missing")

    explain = TopEventExplainer(SETTINGS, broken)
    with caplog.at_level(logging.DEBUG, logger="consumers.alert_explainer"):
        first, second = explain(alert("shares fall")), explain(alert("fraud charges"))
    assert first == alert("shares fall") and second == alert("fraud charges")
    assert attempts == [1]  # not tried again for every alert
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not be loaded" in warnings[0].getMessage()


def test_a_failing_explanation_leaves_the_alert_unchanged_and_warns_once(caplog):
    class Failing(FakeClassifier):
        def explain(self, texts, top_k=5, *, label=None):
            raise RuntimeError("onnxruntime: out of memory")

    explain = TopEventExplainer(SETTINGS, Failing)
    with caplog.at_level(logging.DEBUG, logger="consumers.alert_explainer"):
        assert explain(alert("shares fall")) == alert("shares fall")
        assert explain(alert("fraud charges")) == alert("fraud charges")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("on", [True, False])
def test_the_setting_switches_it(on):
    s = Settings(alerts=AlertSettings(explain_top_events=on))
    assert isinstance(alert_explainer.from_settings(s), TopEventExplainer) is on
    assert Settings().alerts.explain_top_events is True


def test_with_the_real_model_the_words_come_from_the_text_shown(int8_explainer):
    text = "Apple shares plunge after the DOJ sues over App Store monopoly"
    out = int8_explainer(alert(text, "[email] says $AAPL guidance cut"))
    words = [e.explanation for e in out.top_events]
    assert words[0] and set(words[0]) <= set(text.split())
    assert set(words[1]) <= set("[email] says $AAPL guidance cut".split())


@pytest.fixture(scope="module")
def int8_explainer():
    from models.classifier import Classifier

    return TopEventExplainer(SETTINGS, lambda: Classifier.from_settings(SETTINGS.model, backend="onnx-int8",
                                                                         threads=2))
