"""The alerter's handler without a broker: labeled-event records from an in-memory source, alerts
and snapshots into an in-memory sink. The live process (Kafka, Elasticsearch, webhooks, restarts)
is specified in tests/consumers/test_alerter_live.py."""
import json
from datetime import datetime, timedelta, timezone

import numpy as np

from consumers.alerter import AlertHandler, _LoopAdapter
from consumers.alerting import SpikeMonitor
from marketpulse import wire
from marketpulse.consumer_loop import ConsumerLoop, MemorySink, MemorySource
from marketpulse.schemas import LabeledEvent
from marketpulse.settings import AlertSettings, Settings
from marketpulse.wire import InRecord

T0 = datetime(2024, 1, 9, 15, 0, tzinfo=timezone.utc)
SETTINGS = Settings(alerts=AlertSettings(allowed_lateness_s=30, snapshot_interval_s=3600))


def event(i: str, at: datetime, p_neg: float, topic: str = "Markets") -> LabeledEvent:
    rest = (1 - p_neg) / 2
    return LabeledEvent(id=i, source="news", source_name="wire", published_at=at, text=f"AAPL headline {i}",
                        sentiment="negative" if p_neg >= 0.5 else "neutral",
                        sentiment_scores={"negative": p_neg, "neutral": rest, "positive": rest}, topic=topic,
                        topic_scores=[{"label": topic, "score": 0.9}],
                        tickers=[{"symbol": "AAPL", "relevance": 1.0, "matched": "$AAPL"}], model_version="t",
                        processed_at=at)


def history(minutes=120, incident_at=100, seed=0) -> list[LabeledEvent]:
    """~6 AAPL events a minute, 30 % negative; at ``incident_at`` 25 strongly negative headlines."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(minutes):
        for j in range(int(rng.poisson(6))):
            out.append(event(f"m{m}-{j}", T0 + timedelta(seconds=m * 60 + rng.uniform(0, 59)),
                             0.9 if rng.random() < 0.3 else 0.05))
        if m == incident_at:
            out += [event(f"inc-{j}", T0 + timedelta(seconds=m * 60 + 1 + j), 0.97, "Legal") for j in range(25)]
    return sorted(out, key=lambda e: e.published_at)


def as_records(events: list[LabeledEvent]) -> list[InRecord]:
    outs = [wire.encode_labeled(e, "events") for e in events]
    return [InRecord(o.value, o.key, o.topic, 0, i, o.headers) for i, o in enumerate(outs)]


def run(records: list[InRecord], handler: AlertHandler | None = None, batch: int = 50):
    stored, out = [], MemorySink()
    handler = handler or AlertHandler(SETTINGS, out, store_alert=stored.append)
    source = MemorySource(records, batch=batch)
    loop = ConsumerLoop(source, _LoopAdapter(handler, source), name="test")
    while not source.exhausted:
        loop.step()
    return handler, source, stored


def opened_keys(docs) -> set[str]:
    return {d["key"] for d in docs if d["status"] == "opened"}


def test_a_negative_burst_is_published_to_the_topic_and_the_index_alike():
    handler, _, stored = run(as_records(history()))
    assert "ticker:AAPL" in opened_keys(stored)
    published = [wire.decode_alert(InRecord(r.value, r.key, r.topic, 0, 0, r.headers))
                 for r in handler.out.topic(SETTINGS.kafka.topics.alerts)]
    assert [a.id for a in published] == [d["id"] for d in stored]
    aapl = next(d for d in stored if d["key"] == "ticker:AAPL")
    assert datetime.fromisoformat(aapl["window_start"]) == T0 + timedelta(minutes=100) and "fired_at" in aapl


def test_one_event_dated_a_day_ahead_of_the_wall_clock_does_not_blind_the_alerter():
    events = history()
    future = event("from-the-future", datetime.now(timezone.utc) + timedelta(days=1), 0.9)
    with_future = events[:200] + [future] + events[200:]
    _, _, baseline = run(as_records(events))
    _, _, stored = run(as_records(with_future))
    assert [d["id"] for d in stored] == [d["id"] for d in baseline] and baseline


def test_unreadable_records_are_skipped_and_do_not_stop_the_handler():
    recs = as_records(history())
    junk = [InRecord(b"{oops", b"k", "events", 0, 10**6), InRecord(recs[0].value, b"k", "events", 0, 10**6 + 1,
                                                                  ((wire.SCHEMA_HEADER, b"labeled-event/9.0"),))]
    _, _, stored = run(junk + recs)
    assert "ticker:AAPL" in opened_keys(stored)


def test_the_snapshot_holds_the_offsets_it_covers_and_a_resumed_handler_raises_the_same_alerts():
    recs = as_records(history())
    _, _, uninterrupted = run(recs)
    first = AlertHandler(SETTINGS, MemorySink(), store_alert=lambda d: None)
    source = MemorySource(recs[:300], batch=50)
    loop = ConsumerLoop(source, _LoopAdapter(first, source), name="test")
    while not source.exhausted:
        loop.step()
    first.checkpoint(source)
    snap = json.loads(first.out.topic(SETTINGS.kafka.topics.alerter_state)[-1].value)
    assert snap["offsets"] == {"0": 300} and source.committed == 300
    resumed = AlertHandler(SETTINGS, MemorySink(), store_alert=lambda d: None,
                           monitor=SpikeMonitor.from_dict(snap["monitor"]))
    stored: list[dict] = []
    resumed.store_alert = stored.append
    run(recs[snap["offsets"]["0"]:], resumed)
    assert [d["id"] for d in stored] == [d["id"] for d in uninterrupted]


def test_the_alerts_index_being_away_keeps_alerts_to_write_later_instead_of_failing():
    from elasticsearch import ConnectionError as EsConnectionError

    from consumers.es_index import IndexCopy

    class FlakyEs:
        def __init__(self):
            self.up, self.docs, self.indices = False, {}, self

        def exists(self, index):
            if not self.up:
                raise EsConnectionError("down")
            return True

        def index(self, index, id, document, refresh=None):
            if not self.up:
                raise EsConnectionError("down")
            self.docs[id] = document

    es = FlakyEs()
    idx = IndexCopy(es, "alerts", {})
    idx.store("a1", {"id": "a1", "status": "opened"})
    idx.store("a1", {"id": "a1", "status": "escalated"})  # the same incident: one record kept
    idx.store("a2", {"id": "a2", "status": "opened"})
    assert list(idx.pending) == ["a1", "a2"] and not es.docs
    es.up = True
    idx.retry()  # within retry_every_s of the last failure: not tried yet
    assert not es.docs
    idx.retry(force=True)
    assert es.docs == {"a1": {"id": "a1", "status": "escalated"}, "a2": {"id": "a2", "status": "opened"}}
    assert not idx.pending


# -- top-event explanations ---------------------------------------------------------------------
class WordsWith:
    """A stand-in classifier that explains every text by its words containing ``mark``."""

    def __init__(self, mark: str):
        self.mark, self.calls = mark, []

    def explain(self, texts, top_k=5, *, label=None):
        self.calls.append(list(texts))
        return [[w for w in t.split() if self.mark in w] for t in texts]


def published(handler) -> list[dict]:
    return [json.loads(r.value) for r in handler.out.topic(SETTINGS.kafka.topics.alerts)]


def test_top_events_are_explained_before_the_alert_is_published_to_the_topic_and_the_index():
    from consumers.alert_explainer import TopEventExplainer

    clf = WordsWith("inc-")
    stored, out = [], MemorySink()
    handler = AlertHandler(SETTINGS, out, store_alert=stored.append, explain=TopEventExplainer(SETTINGS, lambda: clf))
    run(as_records(history()), handler)
    aapl = next(d for d in stored if d["key"] == "ticker:AAPL")
    assert aapl["top_events"] and all(e["explanation"] == [e["text"].split()[-1]] for e in aapl["top_events"])
    assert published(handler) == stored  # the webhooks read the topic: they get the same words
    # one batched call for the first alert; the second (market and ticker share the burst) reuses it
    assert len(stored) == 2 and clf.calls == [[e["text"] for e in stored[0]["top_events"]]]
    assert stored[0]["top_events"] == stored[1]["top_events"]


def test_an_alert_is_published_without_explanations_when_explaining_fails():
    from consumers.alert_explainer import TopEventExplainer

    def cannot_load():
        raise FileNotFoundError("model.int8.onnx missing")

    def raises(alert):
        raise RuntimeError("a bug in an explainer")

    _, _, reference = run(as_records(history()))
    for explain in (TopEventExplainer(SETTINGS, cannot_load), raises):
        stored, out = [], MemorySink()
        handler = AlertHandler(SETTINGS, out, store_alert=stored.append, explain=explain)
        run(as_records(history()), handler)
        assert [d["id"] for d in stored] == [d["id"] for d in reference] and stored
        assert [d["id"] for d in published(handler)] == [d["id"] for d in reference]
        assert all(e["explanation"] == [] for d in stored for e in d["top_events"])
