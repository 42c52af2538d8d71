"""`marketpulse dashboards push`: clear one-line failures, and an idempotent push to a real Grafana.

The live test runs only with MARKETPULSE_TEST_GRAFANA_URL (e.g. http://admin:admin@localhost:3000 for
the docker-compose Grafana); credentials come from the URL or MARKETPULSE_TEST_GRAFANA_API_KEY.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from dashboards.push import datasource_payloads, load_dashboards
from marketpulse.cli import app

GRAFANA_URL = os.environ.get("MARKETPULSE_TEST_GRAFANA_URL")


def run(*args: str):
    return CliRunner().invoke(app, ["dashboards", "push", *args])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # released on close: nothing listens there


def test_connection_refused_is_one_line_and_non_zero():
    url = f"http://127.0.0.1:{closed_port()}"
    result = run("--url", url, "--user", "admin", "--password", "admin", "--timeout", "3")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: cannot connect to Grafana at {url} (ConnectionError); is it running and is the URL right?"]
    assert "Traceback" not in result.output


def test_credentials_are_required_and_exclusive():
    missing = run("--url", "http://127.0.0.1:3000")
    assert missing.exit_code == 2 and "credentials required" in missing.output
    both = run("--url", "http://127.0.0.1:3000", "--api-key", "k", "--user", "u", "--password", "p")
    assert both.exit_code == 2 and "not both" in both.output


def test_datasource_payloads_follow_the_provisioning_with_urls_for_the_target_grafana():
    payloads = {p["uid"]: p for p in datasource_payloads("http://es.internal:9200", None, events_index="ev")}
    assert set(payloads) == {"marketpulse-es-events", "marketpulse-es-alerts"}  # no Prometheus URL, no datasource
    assert payloads["marketpulse-es-events"]["url"] == "http://es.internal:9200"
    assert payloads["marketpulse-es-events"]["jsonData"] == {"index": "ev", "timeField": "published_at"}
    with_prom = {p["uid"]: p for p in datasource_payloads("http://es:9200", "http://prom:9090")}
    assert with_prom["marketpulse-prometheus"]["url"] == "http://prom:9090"


@pytest.mark.skipif(not GRAFANA_URL, reason="MARKETPULSE_TEST_GRAFANA_URL is not set (no Grafana to push to)")
def test_push_to_a_live_grafana_is_idempotent():
    from grafana_client import GrafanaApi

    parsed = urlparse(GRAFANA_URL)
    key = os.environ.get("MARKETPULSE_TEST_GRAFANA_API_KEY")
    auth = ["--api-key", key] if key else ["--user", parsed.username or "admin", "--password", parsed.password or "admin"]
    base = parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()
    args = ["--url", base, *auth, "--folder", "marketpulse-it", "--prometheus-url", "http://prometheus:9090"]
    first, second = run(*args), run(*args)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    api = GrafanaApi.from_url(base, credential=key or (parsed.username or "admin", parsed.password or "admin"))
    for uid, model in load_dashboards().items():
        stored = api.dashboard.get_dashboard(uid)
        assert stored["dashboard"]["title"] == model["title"]
        assert stored["meta"]["folderUid"] == "marketpulse-it"
    for uid in ("marketpulse-es-events", "marketpulse-es-alerts", "marketpulse-prometheus"):
        assert api.datasource.get_datasource_by_uid(uid)["uid"] == uid


@pytest.mark.skipif(not GRAFANA_URL, reason="MARKETPULSE_TEST_GRAFANA_URL is not set (no Grafana to push to)")
def test_wrong_password_on_a_live_grafana_is_an_auth_error():
    parsed = urlparse(GRAFANA_URL)
    base = parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()
    result = run("--url", base, "--user", "admin", "--password", "definitely-wrong")
    assert result.exit_code == 1
    assert "rejected the credentials: HTTP 401" in result.output


def test_the_elasticsearch_datasources_carry_the_settings_auth_and_ca(tmp_path):
    from marketpulse.settings import ElasticsearchSettings

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    basic = ElasticsearchSettings(url="https://es:9200", username="elastic", password="pw", ca_file=ca)
    keyed = ElasticsearchSettings(url="https://es:9200", api_key="k3y", verify_certs=False)
    for settings, check in (
        (basic, lambda b: b["basicAuth"] and b["basicAuthUser"] == "elastic"
         and b["secureJsonData"] == {"basicAuthPassword": "pw", "tlsCACert": ca.read_text()}
         and b["jsonData"]["tlsAuthWithCACert"] is True),
        (keyed, lambda b: b["jsonData"]["httpHeaderName1"] == "Authorization"
         and b["secureJsonData"] == {"httpHeaderValue1": "ApiKey k3y"} and b["jsonData"]["tlsSkipVerify"] is True),
    ):
        es_bodies = [b for b in datasource_payloads("https://es:9200", None, es_settings=settings)
                     if b["type"] == "elasticsearch"]
        assert len(es_bodies) == 2 and all(check(b) for b in es_bodies), es_bodies
    plain = datasource_payloads("http://es:9200", None, es_settings=ElasticsearchSettings(url="http://es:9200"))
    assert not any("secureJsonData" in b or "basicAuth" in b for b in plain)
