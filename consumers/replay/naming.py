"""Names of a replay run's output indices, kept apart from every live index."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Literal

from marketpulse.settings import ElasticsearchSettings

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_]{0,47}$")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20240109t150000_1a2b3c``. Lower case, as index names must be."""
    now = now or datetime.now(timezone.utc)
    return f"{now.astimezone(timezone.utc):%Y%m%dt%H%M%S}_{uuid.uuid4().hex[:6]}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: use lower-case letters, digits and '_' (at most 48)")
    return run_id


def replay_base(es: ElasticsearchSettings) -> str:
    """``marketpulse`` for the default ``marketpulse-events`` prefix."""
    return es.index_prefix.rsplit("-events", 1)[0]


def replay_index(es: ElasticsearchSettings, run_id: str, kind: Literal["events", "alerts"]) -> str:
    """``marketpulse-replay-<run>-alerts``. Never the live alias, a daily events index (those match
    ``<index_prefix>-*`` and would join the live alias via the template) or the live alerts index."""
    name = f"{replay_base(es)}-replay-{check_run_id(run_id)}-{kind}"
    live = {es.index_prefix, es.alerts_index, es.deliveries_index}
    if name in live or name.startswith(f"{es.index_prefix}-"):
        raise ValueError(f"replay index {name} would collide with live index names; change index_prefix")
    return name
