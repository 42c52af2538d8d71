"""Shared fixtures: the real local Kafka broker and Elasticsearch started by scripts/stack.sh.

Integration tests take `kafka_bootstrap` / `es` fixtures. When a server is unreachable they skip,
unless MARKETPULSE_REQUIRE_STACK=1 (set by `make test`), where a missing server is a failure.
"""
from __future__ import annotations

import os
import signal
import socket
import uuid

import yaml

import pytest

from marketpulse.settings import Settings
from tests.support import Isolated, cleanup_prefix, isolated_overrides

REQUIRE_STACK = os.environ.get("MARKETPULSE_REQUIRE_STACK") == "1"


def _unavailable(what: str) -> None:
    msg = f"{what} is not reachable (start it with `make up`)"
    if REQUIRE_STACK:
        pytest.fail(msg + " — MARKETPULSE_REQUIRE_STACK=1 forbids skipping", pytrace=False)
    pytest.skip(msg)


def _port_open(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    bootstrap = settings.kafka.bootstrap
    if not _port_open(bootstrap):
        _unavailable(f"Kafka broker at {bootstrap}")
    return bootstrap


@pytest.fixture(scope="session")
def es(settings: Settings):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(**settings.elasticsearch.client_kwargs())
    try:
        health = client.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:  # connection refused, timeout...
        _unavailable(f"Elasticsearch at {settings.elasticsearch.url} ({type(exc).__name__})")
    assert health["status"] in ("yellow", "green")
    yield client
    client.close()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests never share topics, groups or indices."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def isolated(tmp_path, unique, kafka_bootstrap, es):
    p = f"it-{unique}"
    overrides = {**isolated_overrides(p, kafka_bootstrap, tmp_path / "state"), "batch": {"max_latency_ms": 50}}
    cfg = tmp_path / "marketpulse.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    logs = tmp_path / "logs"; logs.mkdir()
    iso = Isolated(Settings.load(cfg), cfg, logs)
    yield iso
    for proc in iso.procs:
        iso.stop(proc, signal.SIGKILL, timeout=10)
    cleanup_prefix(p, kafka_bootstrap, es)
