"""Settings: defaults, env vars, YAML file, precedence and validation."""
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketpulse.settings import Settings


def test_defaults_point_at_the_local_stack():
    s = Settings()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.elasticsearch.url == "http://127.0.0.1:9200"
    assert s.kafka.topics.raw() == ["marketpulse.raw.news", "marketpulse.raw.social"]
    assert (s.batch.max_size, s.batch.max_latency_ms) == (64, 50)
    assert s.kafka.topics.partitions == 6


def test_env_vars_override_nested_fields(monkeypatch):
    monkeypatch.setenv("MARKETPULSE_KAFKA__BOOTSTRAP", "10.0.0.1:9999")
    monkeypatch.setenv("MARKETPULSE_BATCH__MAX_SIZE", "128")
    s = Settings()
    assert s.kafka.bootstrap == "10.0.0.1:9999"
    assert s.batch.max_size == 128


def test_yaml_file_is_read_and_env_wins_over_it(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "mp.yaml"
    cfg.write_text("batch:\n  max_size: 16\n  max_latency_ms: 20\nelasticsearch:\n  url: http://es:9200\n")
    monkeypatch.setenv("MARKETPULSE_BATCH__MAX_SIZE", "32")
    s = Settings.load(cfg)
    assert s.batch.max_size == 32  # env beats file
    assert s.batch.max_latency_ms == 20  # file beats default
    assert s.elasticsearch.url == "http://es:9200"


def test_config_file_from_env(tmp_path: Path, monkeypatch):
    cfg = tmp_path / "mp.yaml"
    cfg.write_text("kafka:\n  topics:\n    partitions: 3\n")
    monkeypatch.setenv("MARKETPULSE_CONFIG", str(cfg))
    assert Settings().kafka.topics.partitions == 3


def test_missing_config_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Settings.load(tmp_path / "nope.yaml")


def test_invalid_values_are_rejected():
    with pytest.raises(ValidationError):
        Settings(batch={"max_size": 0})
    with pytest.raises(ValidationError, match="clear_threshold"):
        Settings(alerts={"threshold": 3.0, "clear_threshold": 5.0})


def test_es_auth_prefers_api_key_then_basic():
    assert "api_key" in Settings(elasticsearch={"api_key": "k", "username": "u"}).elasticsearch.client_kwargs()
    kw = Settings(elasticsearch={"username": "u", "password": "p"}).elasticsearch.client_kwargs()
    assert kw["basic_auth"] == ("u", "p")
    assert "api_key" not in Settings().elasticsearch.client_kwargs()
