"""One micro-batch of raw records -> labeled events + dead letters.

Pure logic, no Kafka: the faust agent (stream/app.py) feeds it consumed records and sends what it
returns. Every input record comes out exactly once, either labeled or dead-lettered with a reason.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, Sequence

from marketpulse.schemas import LabeledEvent, RawEvent
from marketpulse.settings import Settings
from stream.enrich.novelty import NoveltyIndex
from stream.enrich.pipeline import EnrichError, Enricher
from marketpulse import metrics, wire
from marketpulse.event_clock import EventClock
from marketpulse.wire import InRecord, OutRecord, Rejection
from stream.validate import validate_record

log = logging.getLogger(__name__)


class Classifier(Protocol):
    model_version: str

    def predict(self, texts: list[str], explain: bool = False) -> list: ...


@dataclass
class BatchResult:
    labeled: list[LabeledEvent] = field(default_factory=list)
    deadletters: list[OutRecord] = field(default_factory=list)

    def out_records(self, events_topic: str) -> list[OutRecord]:
        return [wire.encode_labeled(e, events_topic) for e in self.labeled] + self.deadletters


class BatchProcessor:
    def __init__(self, settings: Settings, classifier: Classifier, enricher: Enricher | None = None):
        self.settings = settings
        self.classifier = classifier
        self.enricher = enricher or Enricher(
            settings.pseudonym_key.get_secret_value(), NoveltyIndex())
        self.explain = settings.model.explain_negative
        self.clock = EventClock(settings.alerts.allowed_lateness_s, settings.event_time.max_future_skew_s)

    def process(self, records: Sequence[InRecord]) -> BatchResult:
        t0 = time.perf_counter()
        result = BatchResult()
        pending: list[tuple[InRecord, object]] = []  # (record, Enriched)
        for rec in records:
            metrics.RECORDS_IN.labels(rec.topic).inc()
            checked = validate_record(rec.value if rec.value is not None else b"", self.settings.batch.max_text_chars)
            if isinstance(checked, Rejection):
                self._deadletter(result, rec, checked)
                continue
            if not self.clock.admits(checked.published_at.timestamp()):
                # Downstream, event time would jump ahead with it and close the windows that every
                # real event after it falls into: the same bound the alerter's clock applies.
                ahead = checked.published_at.timestamp() - time.time()
                self._deadletter(result, rec, Rejection(
                    "future_dated", f"published_at is {ahead:.0f} s ahead of the worker's clock "
                                    f"(event_time.max_future_skew_s = {self.clock.max_future_skew_s:.0f})"))
                continue
            try:
                enriched = self.enricher.enrich(checked)
            except EnrichError as exc:
                self._deadletter(result, rec, Rejection(exc.reason, str(exc)))
                continue
            except Exception as exc:  # a bug on one odd record must not stop the stream
                log.exception("enrichment failed for %s", checked.id)
                self._deadletter(result, rec, Rejection("enrich_error", f"{type(exc).__name__}: {exc}"))
                continue
            pending.append((rec, enriched))

        preds = self._classify([e.model_text for _, e in pending], result, pending)
        t_model = time.perf_counter()
        now = datetime.now(timezone.utc)
        for (rec, enriched), pred in zip(pending, preds):
            if pred is None:
                continue
            result.labeled.append(self._label(enriched, pred, now))
        metrics.BATCH_SIZE.observe(len(records))
        metrics.BATCH_LATENCY.observe(time.perf_counter() - t0)
        metrics.RECORDS_OUT.inc(len(result.labeled))
        for ev in result.labeled:
            ev.timings_ms["batch"] = round((t_model - t0) * 1000, 2)
        return result

    def _classify(self, texts: list[str], result: BatchResult, pending) -> list:
        if not texts:
            return []
        t0 = time.perf_counter()
        try:
            preds = self.classifier.predict(texts, explain=self.explain)
            metrics.MODEL_LATENCY.observe(time.perf_counter() - t0)
            return preds
        except Exception:
            # Isolate the record that breaks the model; the rest of the batch is still labeled.
            log.exception("batch classification failed; retrying record by record")
        preds: list = []
        for (rec, _), text in zip(pending, texts):
            try:
                preds.append(self.classifier.predict([text], explain=self.explain)[0])
            except Exception as exc:
                self._deadletter(result, rec, Rejection("model_error", f"{type(exc).__name__}: {exc}"))
                preds.append(None)
        return preds

    def _label(self, enriched, pred, now: datetime) -> LabeledEvent:
        raw: RawEvent = enriched.event
        topic_scores = [{"label": l, "score": float(s)} for l, s in pred.topic_scores]
        return LabeledEvent(
            **raw.model_dump(),
            sentiment=pred.sentiment,
            sentiment_scores={k: float(v) for k, v in pred.sentiment_scores.items()},
            topic=pred.topic,
            topic_scores=topic_scores,
            tickers=enriched.tickers,
            novelty=enriched.novelty,
            duplicate_of=enriched.duplicate_of,
            explanation=list(pred.explanation or []) if pred.sentiment == "negative" else [],
            model_version=pred.model_version,
            processed_at=now,
        )

    def _deadletter(self, result: BatchResult, rec: InRecord, rej: Rejection) -> None:
        metrics.DEADLETTERED.labels("worker", rej.reason).inc()
        result.deadletters.append(wire.encode_deadletter(rec, rej, "worker", self.settings.kafka.topics.deadletter))
