"""Prometheus metrics of every marketpulse process (served on settings.metrics_port when > 0)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECORDS_IN = Counter("marketpulse_records_in_total", "Raw records consumed", ["topic"])
RECORDS_OUT = Counter("marketpulse_records_out_total", "Labeled events produced")
DEADLETTERED = Counter("marketpulse_deadlettered_total", "Records sent to the dead-letter topic", ["stage", "reason"])
BATCH_SIZE = Histogram("marketpulse_batch_size", "Records per micro-batch",
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
MODEL_LATENCY = Histogram("marketpulse_model_latency_seconds", "Model call per micro-batch",
                          buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
BATCH_LATENCY = Histogram("marketpulse_batch_latency_seconds", "Whole micro-batch: validate, enrich, classify",
                          buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
ES_BULK_LATENCY = Histogram("marketpulse_es_bulk_latency_seconds", "Elasticsearch bulk request",
                            buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
ES_DOCS = Counter("marketpulse_es_documents_total", "Documents acknowledged by Elasticsearch")
CONSUMER_LAG = Gauge("marketpulse_consumer_lag", "Records behind the log end", ["group", "topic", "partition"])
ALERTS = Counter("marketpulse_alerts_total", "Alerts fired", ["key_type", "severity"])
ALERTER_SKIPPED = Counter("marketpulse_alerter_skipped_total",
                          "Events the alerter did not count: unreadable, or dated beyond the future-skew bound",
                          ["reason"])


def serve(port: int, host: str = "127.0.0.1") -> None:
    if port > 0:
        start_http_server(port, addr=host)
