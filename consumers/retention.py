"""Retention: daily event indices older than ``elasticsearch.retention_days`` are deleted, and replay
runs' indices when asked.

Where the cluster has index lifecycle management, the events template names a lifecycle policy
that deletes a daily index ``retention_days`` after the day in its name
(``index.lifecycle.parse_origination_date``), so no job is needed. Where it has not (the
integration-test distribution, some managed offerings), ``marketpulse retention`` does the same from
a scheduler (cron, a Kubernetes CronJob). Both read the day from the index name, never from
document contents, so a backfill of old events cannot keep an index alive.
"""
from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from elasticsearch import ApiError

from marketpulse.settings import ElasticsearchSettings

log = logging.getLogger(__name__)


def policy_name(es_settings: ElasticsearchSettings) -> str:
    return f"{es_settings.index_prefix}-retention"


def ensure_lifecycle(es: Any, es_settings: ElasticsearchSettings) -> bool:
    """Creates (or updates) the delete-after-N-days policy; False when the cluster has no ILM or
    retention is off, so the template leaves the lifecycle out and the job is the way."""
    if es_settings.retention_days is None:
        return False
    try:
        es.ilm.put_lifecycle(name=policy_name(es_settings), policy={"phases": {
            "hot": {"min_age": "0ms", "actions": {}},
            "delete": {"min_age": f"{es_settings.retention_days}d", "actions": {"delete": {}}}}})
        return True
    except ApiError as exc:  # no lifecycle module here: 400/404/405 depending on the distribution
        if exc.meta.status in (401, 403):
            log.warning("not allowed to manage lifecycle policies (%s): run `marketpulse retention` instead",
                        exc.meta.status)
        return False


def day_of(index: str, es_settings: ElasticsearchSettings) -> date | None:
    """The UTC day in a daily index's name (``<prefix>-YYYY.MM.DD``); None for any other index."""
    m = re.fullmatch(re.escape(es_settings.index_prefix) + r"-(\d{4})\.(\d{2})\.(\d{2})", index)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def expired_daily_indices(names: list[str], es_settings: ElasticsearchSettings, today: date) -> list[str]:
    if es_settings.retention_days is None:
        return []
    cutoff = today - timedelta(days=es_settings.retention_days)
    return sorted(n for n in names if (d := day_of(n, es_settings)) is not None and d < cutoff)


def apply_retention(es: Any, es_settings: ElasticsearchSettings, *, dry_run: bool = False,
                    now: datetime | None = None) -> list[str]:
    """Deletes (or with ``dry_run`` only lists) the expired daily indices; returns their names."""
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    names = list(es.indices.get(index=f"{es_settings.index_prefix}-*", expand_wildcards="open,closed"))
    expired = expired_daily_indices(names, es_settings, today)
    if expired and not dry_run:
        for name in expired:  # one by one: a wildcard-free delete, whatever destructive_requires_name says
            es.indices.delete(index=name)
            log.info("deleted expired index %s", name)
    return expired


def replay_indices(es: Any, base: str, *, run_id: str | None = None, older_than_days: float | None = None,
                   now: datetime | None = None) -> list[str]:
    """A replay run's indices (``<base>-replay-<run>-events|alerts``): of one run, or of every run
    created more than ``older_than_days`` ago."""
    pattern = f"{base}-replay-{run_id}-*" if run_id else f"{base}-replay-*"
    found = dict(es.options(ignore_status=404).indices.get_settings(index=pattern, name="index.creation_date"))
    if "error" in found:  # no such index
        return []
    now_ms = (now or datetime.now(timezone.utc)).timestamp() * 1000
    out = []
    for name, body in found.items():
        created = int(body["settings"]["index"]["creation_date"])
        if older_than_days is None or now_ms - created > older_than_days * 86_400_000:
            out.append(name)
    return sorted(out)
