"""`marketpulse dashboards push|check` read the Elasticsearch index names from the settings.

Every dashboards command takes `--config`; without explicit `--events-index`/`--alerts-index` the
datasources point at the names the pipeline writes to: the events alias `elasticsearch.index_prefix`
(the ES sink's daily indices join it) and `elasticsearch.alerts_index` (the alerter's index).
Explicit options still win. No Grafana or Elasticsearch is needed: Grafana is a recording fake
behind `dashboards.push.connect`, and the ES queries of `check` are replaced by a recorder.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dashboards.push
from dashboards import esquery
from dashboards.push import (ALERTS_UID, EVENTS_UID, dashboard_files, datasource_payloads, es_indices,
                             load_dashboards, provisioned_datasources)
from marketpulse.cli import app
from marketpulse.settings import ElasticsearchSettings, Settings

CONFIG_YAML = """\
elasticsearch:
  url: http://es.from-config:9200
  index_prefix: acme-events
  alerts_index: acme-alerts
"""


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch):
    """Only --config (or what a test sets) decides the settings, not the shell running the tests."""
    monkeypatch.delenv("MARKETPULSE_CONFIG", raising=False)
    for name in [n for n in os.environ if n.startswith("MARKETPULSE_ELASTICSEARCH__")]:
        monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "marketpulse.yaml"
    path.write_text(CONFIG_YAML)
    return path


def es_index_by_uid(payloads: list[dict]) -> dict[str, str]:
    return {p["uid"]: p["jsonData"]["index"] for p in payloads if p["type"] == "elasticsearch"}


# --- datasource payloads -------------------------------------------------------------------------

def test_without_settings_the_datasources_read_what_the_sink_and_alerter_write_by_default():
    defaults = ElasticsearchSettings()
    assert es_index_by_uid(datasource_payloads("http://es:9200", None)) == {
        EVENTS_UID: defaults.index_prefix, ALERTS_UID: defaults.alerts_index}


def test_index_names_come_from_the_settings_of_a_yaml_config(config: Path):
    s = Settings.load(config)
    payloads = datasource_payloads("http://es:9200", None, es_settings=s.elasticsearch)
    assert es_index_by_uid(payloads) == {EVENTS_UID: "acme-events", ALERTS_UID: "acme-alerts"}
    # The URL of a pushed datasource is the one Grafana uses, not the settings' (this machine's) URL.
    assert {p["url"] for p in payloads} == {"http://es:9200"}


def test_explicit_index_names_override_the_settings_one_by_one(config: Path):
    es_s = Settings.load(config).elasticsearch
    events_only = datasource_payloads("http://es:9200", None, events_index="ev-override", es_settings=es_s)
    assert es_index_by_uid(events_only) == {EVENTS_UID: "ev-override", ALERTS_UID: "acme-alerts"}
    assert es_indices(es_s, alerts_index="al-override") == {EVENTS_UID: "acme-events", ALERTS_UID: "al-override"}


# --- the files Grafana loads ---------------------------------------------------------------------

def test_provisioned_datasources_use_the_settings_default_index_names():
    """docker compose's Grafana reads the YAML directly (no settings there): it must match the defaults."""
    provisioned = {ds["uid"]: ds["jsonData"]["index"] for ds in provisioned_datasources()
                   if ds["type"] == "elasticsearch"}
    assert provisioned == es_indices(ElasticsearchSettings())


def test_dashboards_reference_elasticsearch_only_through_datasource_uids():
    """The index lives on the datasource; a panel naming an index would ignore --config and the options."""
    es_uids = set(es_indices())
    for path in dashboard_files():
        text = path.read_text()
        assert '"index"' not in text, f"{path.name} embeds an index name"
    for model in load_dashboards().values():
        for _, target in [*esquery.es_targets(model), *esquery.es_annotations(model)]:
            assert target["datasource"]["uid"] in es_uids, json.dumps(target["datasource"])


# --- the CLI -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["push", "check"])
def test_every_dashboards_command_takes_config(command: str):
    result = CliRunner().invoke(app, ["dashboards", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output
    assert "elasticsearch.index_prefix" in result.output and "elasticsearch.alerts_index" in result.output


class FakeGrafana:
    """Just enough of grafana_client.GrafanaApi for `push`: an empty Grafana that records what it gets."""

    def __init__(self):
        self.created: dict[str, dict] = {}
        self.datasource = self
        self.folder = self
        self.dashboard = self

    def get_datasource_by_uid(self, uid):
        from grafana_client.client import GrafanaClientError

        raise GrafanaClientError(404, None, f"datasource {uid} not found")

    def create_datasource(self, body):
        self.created[body["uid"]] = body

    def get_folder(self, uid):
        return {"uid": uid}

    def update_dashboard(self, payload):
        return {"status": "success", "version": 1}


@pytest.fixture
def grafana(monkeypatch) -> FakeGrafana:
    fake = FakeGrafana()
    monkeypatch.setattr(dashboards.push, "connect", lambda *args, **kwargs: fake)
    return fake


def push(*args: str):
    return CliRunner().invoke(app, ["dashboards", "push", "--url", "http://grafana:3000", "--api-key", "k", *args])


def test_push_with_config_creates_datasources_on_the_configured_indices(grafana: FakeGrafana, config: Path):
    result = push("--config", str(config))
    assert result.exit_code == 0, result.output
    assert es_index_by_uid(list(grafana.created.values())) == {EVENTS_UID: "acme-events", ALERTS_UID: "acme-alerts"}
    assert f"datasource {EVENTS_UID}: created" in result.output


def test_push_options_override_the_config(grafana: FakeGrafana, config: Path):
    result = push("-c", str(config), "--events-index", "ev-override")
    assert result.exit_code == 0, result.output
    assert es_index_by_uid(list(grafana.created.values())) == {EVENTS_UID: "ev-override", ALERTS_UID: "acme-alerts"}


def test_push_without_config_follows_marketpulse_config(grafana: FakeGrafana, config: Path, monkeypatch):
    monkeypatch.setenv("MARKETPULSE_CONFIG", str(config))
    result = push()
    assert result.exit_code == 0, result.output
    assert es_index_by_uid(list(grafana.created.values())) == {EVENTS_UID: "acme-events", ALERTS_UID: "acme-alerts"}


def test_push_without_any_settings_uses_the_default_names(grafana: FakeGrafana):
    result = push()
    assert result.exit_code == 0, result.output
    assert es_index_by_uid(list(grafana.created.values())) == es_indices(ElasticsearchSettings())


@pytest.mark.parametrize("command", ["push", "check"])
def test_a_missing_config_file_is_one_line_and_exit_2(command: str, tmp_path: Path, grafana: FakeGrafana):
    missing = tmp_path / "nope.yaml"
    args = ["--url", "http://grafana:3000", "--api-key", "k"] if command == "push" else []
    result = CliRunner().invoke(app, ["dashboards", command, *args, "--config", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: config file {missing} does not exist"]
    assert not grafana.created


def test_invalid_settings_are_one_line_and_exit_2(tmp_path: Path, grafana: FakeGrafana):
    bad = tmp_path / "bad.yaml"
    bad.write_text("elasticsearch:\n  request_timeout_s: soon\n")
    result = push("--config", str(bad))
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: invalid settings: elasticsearch.request_timeout_s:")


@pytest.fixture
def es_queries(monkeypatch) -> dict:
    """Replaces the Elasticsearch round trips of `check`; records the client URL and the indices."""
    seen: dict = {}

    def check(es, dashboards_, indices, time_fields, time_range):
        seen["url"] = es.transport.node_pool.get().base_url
        seen["indices"] = indices
        return [("marketpulse-market / a panel", 3)]

    monkeypatch.setattr(esquery, "check", check)
    return seen


def test_check_with_config_queries_the_configured_indices_on_the_configured_elasticsearch(es_queries, config):
    result = CliRunner().invoke(app, ["dashboards", "check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert es_queries == {"url": "http://es.from-config:9200",
                          "indices": {EVENTS_UID: "acme-events", ALERTS_UID: "acme-alerts"}}


def test_check_options_override_the_config(es_queries, config):
    result = CliRunner().invoke(app, ["dashboards", "check", "-c", str(config), "--es-url", "http://127.0.0.1:9201",
                                      "--alerts-index", "al-override"])
    assert result.exit_code == 0, result.output
    assert es_queries == {"url": "http://127.0.0.1:9201",
                          "indices": {EVENTS_UID: "acme-events", ALERTS_UID: "al-override"}}


def test_check_without_settings_uses_the_default_url_and_names(es_queries):
    result = CliRunner().invoke(app, ["dashboards", "check"])
    assert result.exit_code == 0, result.output
    defaults = ElasticsearchSettings()
    assert es_queries == {"url": defaults.url, "indices": es_indices(defaults)}
