"""Replay on the real stack: a synthetic history with a TSLA burst, replayed from ES and from Kafka.

One history per module (indexed once, ~2.5k events) keeps the module well under 90 s.
"""
from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from elasticsearch.helpers import bulk
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from typer.testing import CliRunner

from consumers.alerting import DetectorConfig, SpikeMonitor
from consumers.es_index import ALERT_MAPPINGS, daily_index, ensure_event_template, ensure_index, to_document
from consumers.replay import commands, runner
from consumers.replay.pacing import Pacer
from consumers.replay.runner import final_watermark
from marketpulse.schemas import LabeledEvent
from marketpulse.settings import Settings
from stream.generate import Generator
from marketpulse.kafka_topics import ensure_topics
from tests.support import cleanup_prefix, isolated_overrides

pytestmark = pytest.mark.integration

T1 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)
MINUTES = 35
T2 = T1 + timedelta(minutes=MINUTES)
BURST = "burst:TSLA@1560+180x2"  # after 26 quiet one-minute buckets
SCORES = {"negative": {"negative": 0.9, "neutral": 0.07, "positive": 0.03},
          "neutral": {"negative": 0.08, "neutral": 0.84, "positive": 0.08},
          "positive": {"negative": 0.03, "neutral": 0.1, "positive": 0.87}}
SENTINEL = {"id": "sentinel", "key": "ticker:SENTINEL", "status": "opened"}


def labeled_history() -> list[dict]:
    """Generator events labeled with their ground truth (fast and deterministic)."""
    out = []
    for s in Generator(seed=11, rate_per_s=1.0, duration_s=MINUTES * 60, scenarios=[BURST], start=T1).samples():
        ev = LabeledEvent(
            **s.event.model_dump(), sentiment=s.sentiment, sentiment_scores=SCORES[s.sentiment], topic=s.topic,
            topic_scores=[{"label": s.topic, "score": 0.9}],
            tickers=[{"symbol": s.ticker, "relevance": 1.0, "matched": f"${s.ticker}"}] if s.ticker else [],
            duplicate_of=s.duplicate_of, model_version="truth-v1", processed_at=s.event.published_at)
        out.append(ev.model_dump(mode="json"))
    return out


def live_reference(events: list[dict], config: DetectorConfig) -> list:
    """What the live alerter computes: SpikeMonitor, event-time watermark, last buckets closed."""
    mon = SpikeMonitor(config)
    alerts = []
    for ev in sorted(events, key=lambda e: (e["published_at"], e["source"], e["id"])):
        mon.observe(LabeledEvent.model_validate(ev))
        alerts += mon.advance()
    return alerts + mon.advance(final_watermark(T2, config))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, kafka_bootstrap, es):
    p = f"it-{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("replay")
    overrides = isolated_overrides(p, kafka_bootstrap, tmp / "state")
    cfg = tmp / "marketpulse.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    settings = Settings.load(cfg)
    events = labeled_history()
    es_s = settings.elasticsearch
    ensure_event_template(es, es_s)
    bulk(es, ({"_index": daily_index(es_s, datetime.fromisoformat(e["published_at"])),
               "_id": f"{e['source']}:{e['id']}", "_source": to_document(e)} for e in events), refresh="wait_for")
    ensure_index(es, es_s.alerts_index, ALERT_MAPPINGS)  # the "live" alerts index, with a sentinel
    es.index(index=es_s.alerts_index, id="sentinel", document=SENTINEL, refresh="wait_for")
    ensure_topics(settings.kafka)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    for e in events:
        producer.send(settings.kafka.topics.events, key=e["id"].encode(), value=json.dumps(e).encode())
    producer.flush(); producer.close()
    yield {"settings": settings, "config": cfg, "events": events, "tmp": tmp, "prefix": p,
           "reference": live_reference(events, DetectorConfig.from_settings(settings.alerts))}
    cleanup_prefix(p, kafka_bootstrap, es)


def unexplained(alert) -> dict:
    return alert.model_copy(update={"top_events": [e.model_copy(update={"explanation": []})
                                                   for e in alert.top_events]}).model_dump()


def group_ids(admin: KafkaAdminClient) -> list[str]:
    """Every consumer group on the broker (kafka-python 3 and 2 admin APIs)."""
    if hasattr(admin, "list_groups"):
        return [g["group_id"] for g in admin.list_groups()]
    return [g for g, _ in admin.list_consumer_groups()]


def group_offsets(admin: KafkaAdminClient, group: str) -> dict:
    if hasattr(admin, "list_group_offsets"):
        return admin.list_group_offsets({group: None}).get(group, {})
    return admin.list_consumer_group_offsets(group)


def live_state(es, settings: Settings) -> tuple[int, int, dict]:
    es.indices.refresh(index=f"{settings.elasticsearch.index_prefix},{settings.elasticsearch.alerts_index}")
    return (es.count(index=settings.elasticsearch.index_prefix)["count"],
            es.count(index=settings.elasticsearch.alerts_index)["count"],
            es.get(index=settings.elasticsearch.alerts_index, id="sentinel")["_source"])


def test_reference_run_alerts_on_the_tsla_burst(stack):
    opened = {a.key for a in stack["reference"] if a.status == "opened"}
    assert "ticker:TSLA" in opened


def test_cli_replay_from_es_is_isolated_matches_live_and_reports(stack, es):
    s, tmp = stack["settings"], stack["tmp"]
    before = live_state(es, s)
    strict = tmp / "strict.yaml"
    strict.write_text(yaml.safe_dump({"alerts": {"threshold": 7.0, "critical_threshold": 12.0}}))
    report = tmp / "report-es"
    res = CliRunner().invoke(__import__("marketpulse.cli", fromlist=["app"]).app, [
        "replay", "--from", T1.isoformat(), "--to", T2.isoformat(), "--source", "es", "--run-id", "es1",
        "--alert-config", "current", "--alert-config", str(strict), "--report", str(report),
        "--embedder", "tfidf", "--config", str(stack["config"])])
    assert res.exit_code == 0, res.output

    # Same alert ids as the live alerter's SpikeMonitor on the same events.
    summary = json.loads((report / "summary.json").read_text())
    assert summary["alert_ids"]["current"] == sorted({a.id for a in stack["reference"]})
    assert summary["events"] == len(stack["events"])

    # Written only to the run's own index; the live alias and alerts index are untouched.
    index = f"{stack['prefix']}-replay-es1-alerts"
    assert summary["alerts_index"] == index
    hits = es.search(index=index, query={"bool": {"filter": [{"term": {"key": "ticker:TSLA"}},
                                                             {"term": {"config": "current"}}]}})["hits"]["hits"]
    assert hits and hits[0]["_source"]["run_id"] == "es1"
    assert live_state(es, s) == before and before[1] == 1 and before[2] == SENTINEL
    assert not es.indices.exists(index=f"{stack['prefix']}-replay-es1-events")  # no rescoring, no events copy

    # Report: Markdown, plots, alerts table, two-config comparison, emerging topics.
    md = (report / "report.md").read_text()
    assert (report / "topics.png").stat().st_size > 5000 and (report / "tickers.png").stat().st_size > 5000
    assert "ticker:TSLA" in md and "## Configuration comparison" in md and "| current | strict |" in md
    assert "## Emerging topics" in md and "Δ share" in md
    assert summary["comparison"][0]["a"] == "current" and summary["comparison"][0]["b"] == "strict"


def test_replay_from_kafka_gives_the_same_alerts_and_commits_no_offsets(stack, es, kafka_bootstrap):
    s = stack["settings"]
    before = live_state(es, s)
    result = commands.replay(s, T1, T2, source="kafka", run_id="kafka1", progress=False, echo=lambda _: None)
    assert result.events == len(stack["events"])
    alerts = result.alerts["current"]
    assert [a.id for a in alerts] == [a.id for a in stack["reference"]]
    # the live alerter's alerts: the monitor's, with the words behind each top event added
    assert [unexplained(a) for a in alerts] == [a.model_dump() for a in stack["reference"]]
    tsla = next(a for a in alerts if a.key == "ticker:TSLA")
    assert any(e.explanation for e in tsla.top_events)
    assert all(set(e.explanation) <= set(e.text.split()) for a in alerts for e in a.top_events)
    assert live_state(es, s) == before

    # No consumer group (live or otherwise) holds offsets for the events topic.
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        topic = s.kafka.topics.events
        for group in group_ids(admin):
            if group.startswith(stack["prefix"]) or "replay" in group:
                pytest.fail(f"replay created consumer group {group}")
            assert not [tp for tp in group_offsets(admin, group) if tp.topic == topic], group
    finally:
        admin.close()


def test_speed_paces_event_time(stack, monkeypatch):
    """10 minutes of history at 600x: the replay waits for event time (about a second of it), and the
    pacer never asks for more waiting than that. No upper bound on wall time: a busy machine is slower
    than the pace, never faster; how long the replay took is printed."""
    slept: list[float] = []
    # the replay's own pacer, recording how long it asked to wait
    monkeypatch.setattr(runner, "Pacer", lambda speed: Pacer(speed, sleep=lambda d: (slept.append(d), time.sleep(d))))
    s = stack["settings"]
    result = commands.replay(s, T1, T1 + timedelta(minutes=10), speed="600x", run_id="paced", progress=False,
                             echo=lambda _: None)
    assert result.events > 400
    assert result.wall_s >= 0.8  # held back to event time: 10 minutes / 600 = 1 s
    assert sum(slept) <= 600 / 600 + 0.01, sum(slept)
    print(f"\npaced replay of {result.events} events took {result.wall_s:.2f} s (slept {sum(slept):.2f} s)")


class KeywordModel:
    """Stands in for a new model version: negative iff the text mentions a recall or a lawsuit."""

    model_version = "keyword-v2"

    def predict(self, texts, explain=False):
        out = []
        for t in texts:
            neg = any(w in t.lower() for w in ("recall", "lawsuit", "disaster"))
            scores = SCORES["negative" if neg else "neutral"]
            topic = "Legal | Regulation" if neg else "General"
            out.append(SimpleNamespace(sentiment="negative" if neg else "neutral", sentiment_scores=scores, topic=topic,
                                       topic_scores=[(topic, 0.9)], model_version=self.model_version))
        return out


def test_rescore_writes_relabeled_events_and_compares_model_versions(stack, es):
    s, tmp = stack["settings"], stack["tmp"]
    before = live_state(es, s)
    result = commands.replay(s, T1, T2, rescore=True, classifier=KeywordModel(), run_id="rescored1",
                             report=tmp / "report-rescore", topics=False, progress=False, echo=lambda _: None)
    assert [l.name for l in result.lanes] == ["current", "current@original"]
    assert result.rescored_version == "keyword-v2" and dict(result.model_versions) == {"truth-v1": len(stack["events"])}
    index = f"{stack['prefix']}-replay-rescored1-events"
    assert es.count(index=index)["count"] == len({(e["source"], e["id"]) for e in stack["events"]})
    versions = es.search(index=index, size=0, aggs={"v": {"terms": {"field": "model_version"}}})
    assert [b["key"] for b in versions["aggregations"]["v"]["buckets"]] == ["keyword-v2"]
    assert "ticker:TSLA" in {a.key for a in result.alerts["current"]}
    assert [a.id for a in result.alerts["current@original"]] == [a.id for a in stack["reference"]]
    md = (tmp / "report-rescore" / "report.md").read_text()
    assert "keyword-v2" in md and "truth-v1" in md and "| current | current@original |" in md
    assert live_state(es, s) == before


def test_discover_topics_cli_with_the_encoder_finds_the_burst(stack):
    from marketpulse.settings import REPO_ROOT

    if not (REPO_ROOT / "models" / "artifacts" / "default" / "metrics.json").is_file():
        pytest.skip("model artifact not built yet (models/artifacts/default)")
    res = CliRunner().invoke(__import__("marketpulse.cli", fromlist=["app"]).app, [
        "discover-topics", "--from", T1.isoformat(), "--to", T2.isoformat(), "--k", "auto",
        "--config", str(stack["config"])])
    assert res.exit_code == 0, res.output
    assert "Emerging topics" in res.output
