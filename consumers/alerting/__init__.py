"""Pure-logic core of the alerter: windowing, spike detection and alert records.

The live alerter (Kafka in, webhooks/Elasticsearch out) and ``marketpulse detect`` both use:

* ``SpikeMonitor(DetectorConfig.from_settings(settings.alerts))`` with ``observe(event)`` and
  ``advance(watermark) -> list[marketpulse.schemas.Alert]``, ``to_dict()`` / ``SpikeMonitor.from_dict(state)``;
* ``SpikeDetector(config).update(timestamp, value, total=None) -> DetectorStep`` for one series.
"""
from consumers.alerting.alert import alert_id
from consumers.alerting.buckets import BucketAggregator, BucketStats, Contributor
from consumers.alerting.config import DetectorConfig
from consumers.alerting.detector import DetectorStep, SpikeDetector
from consumers.alerting.monitor import SpikeMonitor

__all__ = [
    "BucketAggregator", "BucketStats", "Contributor", "DetectorConfig", "DetectorStep",
    "SpikeDetector", "SpikeMonitor", "alert_id",
]
