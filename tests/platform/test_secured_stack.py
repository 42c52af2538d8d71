"""The pipeline against a secured Kafka (SASL_SSL, SCRAM-SHA-512, a private CA) and a secured
Elasticsearch (security on, HTTPS, basic auth): `scripts/stack.sh up` with MARKETPULSE_STACK_SECURE=1
serves both beside the plain ones (`make test` does). Wrong credentials and an untrusted
certificate end a command at once with one line and exit code 2, not in a retry loop."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch

from marketpulse.settings import REPO_ROOT, Settings
from tests.support import wait_until

pytestmark = pytest.mark.integration
TLS_DIR = Path(os.environ.get("MARKETPULSE_STATE_DIR", REPO_ROOT / ".state")) / "tls"
KAFKA_SECURE = f"127.0.0.1:{os.environ.get('MARKETPULSE_KAFKA_SECURE_PORT', '9094')}"
ES_SECURE = f"https://127.0.0.1:{os.environ.get('MARKETPULSE_ES_SECURE_PORT', '9201')}"


def _credentials() -> dict[str, str]:
    path = TLS_DIR / "credentials.env"
    if not path.exists():
        from tests.conftest import _unavailable

        _unavailable("the secured stack (MARKETPULSE_STACK_SECURE=1 scripts/stack.sh up)")
    return dict(line.split("=", 1) for line in path.read_text().split())


@pytest.fixture
def secured(isolated):
    """The test's isolated settings, pointed at the secured Kafka listener and Elasticsearch node."""
    creds = _credentials()
    cfg = yaml.safe_load(isolated.config.read_text())
    cfg["kafka"]["bootstrap"] = KAFKA_SECURE
    cfg["kafka"]["security"] = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                "username": creds["KAFKA_USER"], "password": creds["KAFKA_PASSWORD"],
                                "ca_file": str(TLS_DIR / "ca.pem")}
    cfg["elasticsearch"].update({"url": ES_SECURE, "username": creds["ES_USER"], "password": creds["ES_PASSWORD"],
                                 "ca_file": str(TLS_DIR / "ca.pem")})
    isolated.config.write_text(yaml.safe_dump(cfg))
    isolated.settings = Settings.load(isolated.config)
    es = Elasticsearch(**isolated.settings.elasticsearch.client_kwargs())
    try:
        es.cluster.health(wait_for_status="yellow", timeout="10s")
    except Exception as exc:  # noqa: BLE001 - any failure here means the secured node is not there
        from tests.conftest import _unavailable

        _unavailable(f"the secured Elasticsearch at {ES_SECURE} ({type(exc).__name__})")
    yield isolated, es, cfg
    prefix = isolated.settings.elasticsearch.index_prefix.rsplit("-events", 1)[0]
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
    es.close()


def _run(config: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marketpulse.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _with(config: Path, tmp: Path, name: str, change) -> Path:
    cfg = yaml.safe_load(config.read_text())
    change(cfg)
    out = tmp / name
    out.write_text(yaml.safe_dump(cfg))
    return out


@pytest.mark.timeout(420)
def test_the_pipeline_runs_through_sasl_ssl_kafka_into_https_elasticsearch(secured, tmp_path):
    iso, es, _ = secured
    records = [{"id": f"sec-{i}", "source": "news", "source_name": "wire", "published_at": "2026-11-23T14:00:00Z",
                "text": f"Tesla shares fall after recall number {i}"} for i in range(30)]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    worker = iso.start("worker")
    sink = iso.start("sink")
    produced = _run(iso.config, "produce", "--source", "news", str(feed))
    assert produced.returncode == 0, produced.stderr[-2000:]
    alias = iso.settings.elasticsearch.index_prefix

    def stored() -> int:
        if not es.indices.exists_alias(name=alias):
            return 0
        es.indices.refresh(index=alias)
        return es.count(index=alias)["count"]

    try:
        wait_until(lambda: stored() >= len(records), 300, 1.0, what="every record in the secured Elasticsearch")
    except AssertionError:
        pytest.fail(iso.log_tail(worker, 40) + "\n---\n" + iso.log_tail(sink, 40))
    assert stored() == len(records)
    assert worker.poll() is None and sink.poll() is None
    # the sink's consumer and producer did authenticate (kafka-python logs each SASL login)
    assert "via SASL / SCRAM-SHA-512" in iso.log_text(sink), iso.log_tail(sink, 40)


@pytest.mark.parametrize("what,change,expect", [
    ("kafka_password", lambda c: c["kafka"]["security"].update(password="not-the-password"),
     "the credentials of 'marketpulse'"),
    ("kafka_ca", lambda c: c["kafka"]["security"].pop("ca_file"), "TLS certificate not trusted"),
])
def test_wrong_kafka_credentials_or_an_untrusted_broker_end_the_command_with_one_line(secured, tmp_path, what,
                                                                                    change, expect):
    iso, _, _ = secured

    def changed(cfg):
        change(cfg)
        # room for a broker slowed by a busy machine to answer the first attempt: the error must
        # come from what it answered, not from the wait running out
        cfg["kafka"]["connect_timeout_s"] = 30

    config = _with(iso.config, tmp_path, f"{what}.yaml", changed)
    t0 = time.monotonic()
    done = _run(config, "topics")
    took = time.monotonic() - t0
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and expect in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    # bounded: one connect timeout, not a retry loop that runs until killed
    assert took < 30 + 20, took


@pytest.mark.parametrize("what,change,expect", [
    ("es_password", lambda c: c["elasticsearch"].update(password="not-the-password"), "rejected the credentials"),
    ("es_ca", lambda c: c["elasticsearch"].pop("ca_file"), "set elasticsearch.ca_file"),
])
def test_wrong_elasticsearch_credentials_or_an_untrusted_node_end_the_command_with_one_line(secured, tmp_path, what,
                                                                                        change, expect):
    iso, _, _ = secured
    config = _with(iso.config, tmp_path, f"{what}.yaml", change)
    done = _run(config, "dashboards", "check", "--hours", "1")
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and expect in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
