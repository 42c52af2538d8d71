"""One replay run: historical events -> (optional re-classification) -> one SpikeMonitor per lane.

A lane is an alert configuration applied to either the original labels or the re-scored ones.
Every lane gets a fresh ``SpikeMonitor(DetectorConfig)`` fed in event-time order with the
watermark at the latest event time, exactly as the live alerter advances it, so on the same events
replay and live produce the same alerts with the same ids. At the end the watermark moves past the
end of the range so the last buckets close. Like the live alerter, top events are explained before
an alert is kept (``explain``, see consumers.alert_explainer). Output goes only to run-scoped
indices (see naming).
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from consumers.alerting import DetectorConfig, SpikeMonitor
from consumers.es_index import ALERT_MAPPINGS, EVENT_MAPPINGS, ensure_index, to_document
from consumers.replay import readers
from consumers.replay.naming import new_run_id, replay_index
from consumers.replay.pacing import Pacer
from consumers.replay.rescore import ClassifierLike, rescore
from consumers.replay.share_series import ShareSeries
from marketpulse.event_clock import EventClock
from marketpulse.schemas import Alert, LabeledEvent
from marketpulse.settings import Settings

log = logging.getLogger(__name__)
Labels = Literal["original", "rescored"]

REPLAY_ALERT_MAPPINGS: dict = {"properties": {
    **ALERT_MAPPINGS["properties"],
    "run_id": {"type": "keyword"}, "config": {"type": "keyword"}, "labels": {"type": "keyword"},
    "model_version": {"type": "keyword"}, "replayed_at": {"type": "date"},
}}


@dataclass
class Lane:
    name: str
    config: DetectorConfig
    labels: Labels = "original"
    monitor: SpikeMonitor = field(init=False, repr=False)
    alerts: list[Alert] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.monitor = SpikeMonitor(self.config)


@dataclass
class ReplayResult:
    run_id: str
    source: str
    start: datetime
    end: datetime
    lanes: list[Lane]
    events: int = 0
    skipped: int = 0
    alerts_index: str | None = None
    events_index: str | None = None
    model_versions: Counter[str] = field(default_factory=Counter)  # original labels' versions
    rescored_version: str | None = None
    series: ShareSeries | None = None
    topic_texts: list[str] = field(default_factory=list)
    topic_times: list[datetime] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def alerts(self) -> dict[str, list[Alert]]:
        return {lane.name: lane.alerts for lane in self.lanes}

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "source": self.source, "from": self.start.isoformat(),
            "to": self.end.isoformat(), "events": self.events, "skipped": self.skipped,
            "alerts_index": self.alerts_index, "events_index": self.events_index,
            "model_versions": dict(self.model_versions), "rescored_version": self.rescored_version,
            "alerts": {lane.name: len(lane.alerts) for lane in self.lanes}, "wall_s": round(self.wall_s, 2),
        }


def final_watermark(end: datetime, config: DetectorConfig) -> float:
    """Closes every bucket that overlaps [start, end), and no later one."""
    return math.ceil(end.timestamp() / config.bucket_s) * config.bucket_s + config.allowed_lateness_s


class ReplayRunner:
    def __init__(self, settings: Settings, start: datetime, end: datetime, *,
                 lanes: list[Lane], source: Literal["es", "kafka"] = "es", speed: float | None = None,
                 classifier: ClassifierLike | None = None, es: Elasticsearch | None = None,
                 run_id: str | None = None, write: bool = True, progress: bool = True,
                 chunk_size: int = 256, max_topic_events: int = 20_000, seed: int = 0,
                 explain: Callable[[Alert], Alert] | None = None):
        if end <= start:
            raise ValueError("--to must be after --from")
        if not lanes:
            raise ValueError("need at least one alert configuration")
        if any(l.labels == "rescored" for l in lanes) and classifier is None:
            raise ValueError("a lane on rescored labels needs a classifier")
        self.s = settings
        self.start, self.end = start, end
        self.lanes = lanes
        self.source = source
        self.pacer = Pacer(speed)
        self.classifier = classifier
        self.explain = explain
        self.es = es or Elasticsearch(**settings.elasticsearch.client_kwargs())
        self.run_id = run_id or new_run_id()
        self.write = write
        self.progress = progress
        self.chunk_size = chunk_size
        self.max_topic_events = max_topic_events
        self._rng = random.Random(seed)
        self.clock = self._clock()
        self._seen_for_topics = 0
        es_s = settings.elasticsearch
        self.alerts_index = replay_index(es_s, self.run_id, "alerts")
        self.events_index = replay_index(es_s, self.run_id, "events") if classifier is not None else None
        bucket_s = lanes[0].config.bucket_s
        self.result = ReplayResult(self.run_id, source, start, end, lanes, series=ShareSeries(bucket_s),
                                   alerts_index=self.alerts_index if write else None,
                                   events_index=self.events_index if write else None,
                                   rescored_version=getattr(classifier, "model_version", None))

    # -- input ----------------------------------------------------------------------------------------
    def _read(self) -> tuple[Iterator[LabeledEvent | None], int | None]:
        if self.source == "es":
            alias = self.s.elasticsearch.index_prefix
            if not self.es.indices.exists_alias(name=alias) and not self.es.indices.exists(index=alias):
                raise RuntimeError(f"no events alias or index {alias} in Elasticsearch")
            total = readers.count_es(self.es, alias, self.start, self.end)
            return readers.read_es(self.es, alias, self.start, self.end), total
        if self.source == "kafka":
            return readers.read_kafka(self.s, self.start, self.end, self._clock()), None
        raise ValueError(f"unknown source {self.source!r}; use es or kafka")

    def _clock(self) -> EventClock:
        """The live alerter's event clock: the same lateness and future-skew bound."""
        lateness = max(l.config.allowed_lateness_s for l in self.lanes)
        return EventClock(lateness, self.s.event_time.max_future_skew_s)

    @staticmethod
    def _chunks(it: Iterable[LabeledEvent | None], n: int) -> Iterator[list[LabeledEvent | None]]:
        chunk: list[LabeledEvent | None] = []
        for ev in it:
            chunk.append(ev)
            if len(chunk) >= n:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    # -- the run --------------------------------------------------------------------------------------
    def run(self) -> ReplayResult:
        t_wall = time.monotonic()
        if self.write:
            ensure_index(self.es, self.alerts_index, REPLAY_ALERT_MAPPINGS)
            if self.events_index:
                ensure_index(self.es, self.events_index, EVENT_MAPPINGS)
        events, total = self._read()
        from tqdm import tqdm

        bar = tqdm(total=total, unit="ev", desc=f"replay {self.run_id}", disable=not self.progress,
                   mininterval=0.5)
        try:
            for chunk in self._chunks(events, self.chunk_size):
                self._process(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
        for lane in self.lanes:
            self._emit(lane, lane.monitor.advance(final_watermark(self.end, lane.config)))
        if self.write:
            self.es.indices.refresh(index=self.alerts_index)
            if self.events_index:
                self.es.indices.refresh(index=self.events_index)
        self.result.wall_s = time.monotonic() - t_wall
        return self.result

    def _process(self, chunk: list[LabeledEvent | None]) -> None:
        """``chunk``: events in event-time order; None for records the reader could not decode."""
        r = self.result
        original: list[LabeledEvent] = []
        for ev in chunk:
            if ev is None or not self.clock.admits(ev.published_at.timestamp()):
                r.skipped += 1  # unreadable or future-dated: the live alerter skips them too
            else:
                original.append(ev)
        rescored: list[LabeledEvent | None] = [None] * len(original)
        if self.classifier is not None:
            rescored = list(rescore(original, self.classifier))
            if self.write:
                self._index_events(rescored)
        for orig, new in zip(original, rescored):
            r.events += 1
            r.model_versions[orig.model_version] += 1
            primary = new or orig
            assert r.series is not None
            r.series.add(primary)
            self._sample_for_topics(primary)
            self.pacer.wait(orig.published_at.timestamp())
            # Events arrive in event-time order: the watermark is the newest event time, as live.
            self.clock.observe(0, orig.published_at.timestamp())
            watermark = self.clock.watermark()
            for lane in self.lanes:
                ev = new if lane.labels == "rescored" else orig
                if ev is None:
                    continue
                lane.monitor.observe(ev)
                self._emit(lane, lane.monitor.advance(watermark))

    def _sample_for_topics(self, ev: LabeledEvent) -> None:
        """Reservoir sample of distinct stories, so huge ranges stay cheap to cluster."""
        if ev.duplicate_of:
            return
        self._seen_for_topics += 1
        texts, times = self.result.topic_texts, self.result.topic_times
        text = ev.title or ev.text
        if len(texts) < self.max_topic_events:
            texts.append(text); times.append(ev.published_at)
            return
        j = self._rng.randrange(self._seen_for_topics)
        if j < self.max_topic_events:
            texts[j], times[j] = text, ev.published_at

    # -- output ---------------------------------------------------------------------------------------
    def _emit(self, lane: Lane, alerts: list[Alert]) -> None:
        if not alerts:
            return
        if self.explain is not None:
            alerts = [self.explain(a) for a in alerts]
        lane.alerts.extend(alerts)
        if not self.write:
            return
        now = datetime.now(timezone.utc).isoformat()
        actions = []
        for a in alerts:
            doc = a.model_dump(mode="json")
            # Event time at which the live alerter would have fired: when this bucket closed.
            doc.update(fired_at=doc["window_end"], replayed_at=now, run_id=self.run_id, config=lane.name,
                       labels=lane.labels,
                       model_version=self.result.rescored_version if lane.labels == "rescored" else None)
            # Escalations overwrite their incident's record, like the live alerts index.
            actions.append({"_index": self.alerts_index, "_id": f"{lane.name}:{a.id}", "_source": doc})
        bulk(self.es, actions)

    def _index_events(self, events: list[LabeledEvent]) -> None:
        assert self.events_index is not None
        actions = [{"_index": self.events_index, "_id": e.doc_id, "_source": to_document(e.model_dump(mode="json"))}
                   for e in events]
        if actions:
            bulk(self.es, actions)


def make_lanes(configs: list[tuple[str, DetectorConfig]], rescore_mode: bool) -> list[Lane]:
    """Without rescoring: one lane per config. With it: each config on the new labels, plus the
    first config on the original labels, so the report compares the two model versions."""
    if not rescore_mode:
        return [Lane(name, cfg) for name, cfg in configs]
    lanes = [Lane(name, cfg, "rescored") for name, cfg in configs]
    first_name, first_cfg = configs[0]
    lanes.append(Lane(f"{first_name}@original", first_cfg, "original"))
    return lanes
