"""Retention: daily event indices go `retention_days` after the day in their name; replay runs'
indices go when asked. The local Elasticsearch has no lifecycle module, so the job is what runs
there (and the template leaves the lifecycle out)."""
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest

from consumers.retention import day_of, expired_daily_indices
from marketpulse.settings import ElasticsearchSettings

ES = ElasticsearchSettings(index_prefix="mp-events", retention_days=30)


@pytest.mark.parametrize("name,day", [
    ("mp-events-2026.11.23", date(2026, 11, 23)),
    ("mp-events-archive", None),
    ("mp-events-2026.02.30", None),  # not a day
    ("mp-events-2026.11.23-000001", None),
    ("other-events-2026.11.23", None),
    ("mp-events", None),
])
def test_the_day_is_read_from_a_daily_index_name_only(name, day):
    assert day_of(name, ES) == day


def test_only_daily_indices_older_than_the_retention_expire():
    today = date(2026, 12, 1)
    names = ["mp-events-2026.10.31", "mp-events-2026.11.01", "mp-events-2026.12.01", "mp-events-archive",
             "mp-events-1970.01.01"]
    assert expired_daily_indices(names, ES, today) == ["mp-events-1970.01.01", "mp-events-2026.10.31"]
    assert expired_daily_indices(names, ES.model_copy(update={"retention_days": None}), today) == []


@pytest.mark.integration
def test_the_retention_job_and_replay_cleanup_delete_what_is_expired_on_the_real_stack(isolated, es, tmp_path):
    s = isolated.settings
    prefix = s.elasticsearch.index_prefix
    base = prefix.rsplit("-events", 1)[0]
    today = datetime.now(timezone.utc).date()
    old, recent = (f"{prefix}-{d:%Y.%m.%d}" for d in (today - timedelta(days=400), today - timedelta(days=3)))
    from consumers.es_index import ensure_event_template

    ensure_event_template(es, s.elasticsearch)  # what the sink does at start
    for name in (old, recent, f"{prefix}-archive", f"{base}-replay-run_a-alerts", f"{base}-replay-run_b-alerts"):
        es.indices.create(index=name)
    settings = es.indices.get_settings(index=recent)[recent]["settings"]["index"]
    assert settings["number_of_shards"] == "1" and "lifecycle" not in settings  # no ILM on this node

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "marketpulse.cli", *args, "--config", str(isolated.config)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert f"would delete {old}" in cli("retention", "--dry-run") and es.indices.exists(index=old)
    out = cli("retention")
    assert f"deleted {old}" in out and recent not in out
    assert not es.indices.exists(index=old)
    assert es.indices.exists(index=recent) and es.indices.exists(index=f"{prefix}-archive")

    assert "deleted" in cli("replay", "cleanup", "--run-id", "run_a")
    assert not es.indices.exists(index=f"{base}-replay-run_a-alerts")
    assert es.indices.exists(index=f"{base}-replay-run_b-alerts")
    assert "no replay indices matched" in cli("replay", "cleanup", "--older-than-days", "1")
    assert "deleted" in cli("replay", "cleanup", "--older-than-days", "0")
    assert not es.indices.exists(index=f"{base}-replay-run_b-alerts")


def test_the_template_names_the_lifecycle_policy_where_the_cluster_has_lifecycle_management():
    from consumers.es_index import ensure_event_template

    class Ilm:
        def __init__(self):
            self.policies = {}

        def put_lifecycle(self, name, policy):
            self.policies[name] = policy

    class Indices:
        def put_index_template(self, **kw):
            self.template = kw

    class FakeEs:
        ilm, indices = Ilm(), Indices()

    fake = FakeEs()
    ensure_event_template(fake, ES)
    settings = fake.indices.template["template"]["settings"]
    assert settings["index.lifecycle.name"] == "mp-events-retention"
    assert settings["index.lifecycle.parse_origination_date"] is True
    assert fake.ilm.policies["mp-events-retention"]["phases"]["delete"]["min_age"] == "30d"
