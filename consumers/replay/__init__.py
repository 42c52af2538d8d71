"""Historical replay of labeled events through the alerter, and emerging-topic discovery.

``marketpulse replay`` reads a time range of labeled events (Elasticsearch or Kafka), optionally
re-classifies them with the current model, runs one fresh ``SpikeMonitor`` per alert config with
event-time watermarks (exactly like the live alerter), and writes its alerts to run-scoped indices
and an optional Markdown report. ``marketpulse discover-topics`` clusters event embeddings and
names the clusters that grew fastest.
"""
from consumers.replay.compare import Comparison, PairStats, compare_alerts
from consumers.replay.naming import new_run_id, replay_index
from consumers.replay.runner import Lane, ReplayResult, ReplayRunner

__all__ = ["Comparison", "Lane", "PairStats", "ReplayResult", "ReplayRunner", "compare_alerts",
           "new_run_id", "replay_index"]
