"""ReplayRunner's output step without a stack: alerts are explained like the live alerter's before a
lane keeps them, and an explainer that fails costs no alert."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from consumers.alert_explainer import TopEventExplainer
from consumers.alerting import DetectorConfig
from consumers.alerting.alert import build_alert
from consumers.alerting.buckets import Contributor
from consumers.replay.runner import Lane, ReplayRunner
from marketpulse.settings import Settings

T1 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)
SETTINGS = Settings()


def alert(*texts: str):
    t = T1.timestamp()
    return build_alert(key="ticker:TSLA", incident_start=t, window_end=t + 60, observed=10, expected=1, score=5,
                       severity="warning", status="opened", total=20,
                       contributors=[Contributor(f"e{i}", "news", "wire", text, 1.0, t) for i, text in enumerate(texts)])


class RecallWords:
    def explain(self, texts, top_k=5, *, label=None):
        return [[w for w in t.split() if w.lower().startswith("recall")] for t in texts]


def runner(explain) -> tuple[ReplayRunner, Lane]:
    lane = Lane("current", DetectorConfig())
    return ReplayRunner(SETTINGS, T1, T1 + timedelta(hours=1), lanes=[lane], es=object(), write=False,
                        progress=False, explain=explain), lane


def test_a_lane_keeps_its_alerts_with_the_top_events_explained():
    r, lane = runner(TopEventExplainer(SETTINGS, RecallWords))
    r._emit(lane, [alert("Tesla recalls 2 million cars", "TSLA falls")])
    [kept] = lane.alerts
    assert [e.explanation for e in kept.top_events] == [["recalls"], []]


def test_without_an_explainer_or_when_it_cannot_load_alerts_are_kept_as_built():
    def cannot_load():
        raise FileNotFoundError("no model")

    for explain in (None, TopEventExplainer(SETTINGS, cannot_load)):
        r, lane = runner(explain)
        r._emit(lane, [alert("Tesla recalls 2 million cars")])
        assert lane.alerts == [alert("Tesla recalls 2 million cars")]
