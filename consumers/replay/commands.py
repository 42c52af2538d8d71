"""What ``marketpulse replay`` and ``marketpulse discover-topics`` do, callable without the CLI."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from elasticsearch import Elasticsearch

from consumers import alert_explainer
from consumers.replay import readers
from consumers.replay.configs import load_alert_configs
from consumers.replay.pacing import parse_speed
from consumers.replay.runner import ReplayResult, ReplayRunner, make_lanes
from consumers.replay.emerging_topics import Embedder, TopicCluster, discover_topics, model_embedder, tfidf_embedder
from marketpulse.settings import Settings

log = logging.getLogger(__name__)
EmbedderName = Literal["model", "tfidf"]


def load_classifier(settings: Settings, backend: str | None = None):
    from models.classifier import Classifier

    return Classifier.from_settings(settings.model, backend=backend)


def make_embedder(settings: Settings, name: EmbedderName, classifier: Any = None) -> tuple[Embedder, str]:
    """(embedder, description for the report)."""
    if name not in ("model", "tfidf"):
        raise ValueError(f"unknown embedder {name!r}; use model or tfidf")
    if name == "tfidf":
        return tfidf_embedder, "TF-IDF/SVD bag-of-words embeddings"
    clf = classifier or load_classifier(settings)
    return model_embedder(clf), f"encoder embeddings of model {clf.model_version}"


def replay(settings: Settings, start: str | datetime, end: str | datetime, *, source: str = "es",
           speed: str = "max", rescore: bool = False, alert_configs: list[str] | None = None,
           report: Path | None = None, run_id: str | None = None, topics: bool = True,
           embedder: EmbedderName = "model", k: str = "auto", progress: bool = True,
           es: Elasticsearch | None = None, classifier: Any = None,
           echo: Callable[[str], None] = print) -> ReplayResult:
    t1, t2 = readers.parse_time(start), readers.parse_time(end)
    if source not in ("es", "kafka"):
        raise ValueError(f"unknown source {source!r}; use es or kafka")
    if topics and report is not None and embedder not in ("model", "tfidf"):
        raise ValueError(f"unknown embedder {embedder!r}; use model or tfidf")
    configs = load_alert_configs(alert_configs, settings.alerts)
    if rescore and classifier is None:
        classifier = load_classifier(settings)
    runner = ReplayRunner(settings, t1, t2, lanes=make_lanes(configs, rescore), source=source,  # type: ignore[arg-type]
                          speed=parse_speed(speed), classifier=classifier if rescore else None, es=es,
                          run_id=run_id, progress=progress,
                          # the live alerter's explanations, from the re-scoring model when there is one
                          explain=alert_explainer.from_settings(settings, (lambda: classifier) if rescore else None))
    result = runner.run()
    echo(f"replay {result.run_id}: {result.events} events from {source}, alerts -> {result.alerts_index}")
    for lane in result.lanes:
        echo(f"  {lane.name} [{lane.labels}]: {sum(1 for a in lane.alerts if a.status == 'opened')} incident(s), "
             f"{len(lane.alerts)} alert record(s)")
    if report is not None:
        from consumers.replay.backtest_report import write_report

        clusters: list[TopicCluster] | None = None
        note: str | None = None
        if topics:
            try:
                embed, what = make_embedder(settings, embedder, classifier)
                clusters = discover_topics(result.topic_texts, result.topic_times, embed, k=_k(k))
                note = f"Embeddings: {what}; {len(result.topic_texts)} distinct stories."
            except Exception as exc:  # a missing model must not lose the rest of the report
                log.warning("emerging topics skipped: %s", exc)
                note = f"Emerging topics not computed: {type(exc).__name__}: {exc}"
        path = write_report(result, report, clusters, note)
        echo(f"report: {path}")
    return result


def _k(k: str | int) -> str | int:
    return "auto" if str(k) == "auto" else int(k)


def discover(settings: Settings, start: str | datetime, end: str | datetime, *, k: str = "auto",
             embedder: EmbedderName = "model", es: Elasticsearch | None = None,
             max_events: int = 20_000, seed: int = 0) -> list[TopicCluster]:
    """Distinct stories (no near-duplicates) in the range from the events alias, clustered."""
    t1, t2 = readers.parse_time(start), readers.parse_time(end)
    es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
    texts: list[str] = []
    times: list[datetime] = []
    for ev in readers.read_es(es, settings.elasticsearch.index_prefix, t1, t2):
        if ev is None or ev.duplicate_of:
            continue
        texts.append(ev.title or ev.text)
        times.append(ev.published_at)
    if len(texts) > max_events:  # evenly spaced in time keeps the growth comparison fair
        step = len(texts) / max_events
        keep = [int(i * step) for i in range(max_events)]
        texts, times = [texts[i] for i in keep], [times[i] for i in keep]
    embed, _ = make_embedder(settings, embedder)
    return discover_topics(texts, times, embed, k=_k(k), seed=seed)


def print_topics(clusters: list[TopicCluster]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Emerging topics (fastest-growing first)")
    for col in ("topic", "events", "1st half", "2nd half", "Δ share", "example"):
        table.add_column(col, overflow="fold")
    for t in clusters:
        table.add_row(t.label, str(t.size), f"{t.share_first:.1%}", f"{t.share_second:.1%}", f"{t.growth:+.1f} pp",
                      t.examples[0] if t.examples else "")
    Console().print(table)
