"""Settings: defaults, env vars, .env, YAML file, secret files, precedence, strictness and validation."""
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketpulse.settings import NON_SETTING_ENV, AlertSettings, ConfigError, Settings


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


@pytest.mark.parametrize("value", ["1s", "200ms", "30s", "5m", "-1"])
def test_the_refresh_interval_takes_elasticsearch_times(value, monkeypatch):
    assert Settings().elasticsearch.refresh_interval == "1s"
    monkeypatch.setenv("MARKETPULSE_ELASTICSEARCH__REFRESH_INTERVAL", value)
    assert Settings().elasticsearch.refresh_interval == value


@pytest.mark.parametrize("value", ["1.5s", "1 s", "0s", "fast", "", "10"])
def test_a_refresh_interval_elasticsearch_would_refuse_is_refused_here(value):
    with pytest.raises(ValidationError, match="refresh_interval"):
        Settings(elasticsearch={"refresh_interval": value})


def test_model_threads_default_to_the_backend_and_must_be_positive():
    assert Settings().model.threads is None
    assert Settings(model={"threads": 1}).model.threads == 1
    with pytest.raises(ValidationError, match="threads"):
        Settings(model={"threads": 0})


def test_es_auth_prefers_api_key_then_basic():
    assert "api_key" in Settings(elasticsearch={"api_key": "k", "username": "u"}).elasticsearch.client_kwargs()
    kw = Settings(elasticsearch={"username": "u", "password": "p"}).elasticsearch.client_kwargs()
    assert kw["basic_auth"] == ("u", "p")
    assert "api_key" not in Settings().elasticsearch.client_kwargs()


# --- strict sources: a misspelt key is an error that names the closest valid one ----------------

@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch):
    """No .env of the checkout and no MARKETPULSE_* settings from the shell running the tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MARKETPULSE_SECRETS_DIR", str(tmp_path / "no-secrets-here"))
    (tmp_path / "no-secrets-here").mkdir()
    import os

    for name in [n for n in os.environ if n.upper().startswith("MARKETPULSE_") and n != "MARKETPULSE_SECRETS_DIR"]:
        monkeypatch.delenv(name)
    return tmp_path


def problems(**kwargs) -> list[str]:
    with pytest.raises(ConfigError) as err:
        Settings.load(**kwargs)
    return err.value.problems


def test_a_typo_in_the_yaml_names_the_key_and_the_closest_valid_one(clean_env: Path):
    cfg = clean_env / "config.yaml"
    cfg.write_text("kafka:\n  bootstrapp: 10.0.0.1:9092\nalerts:\n  thresold: 4\n")
    assert problems(path=cfg) == [
        f"{cfg}: unknown key 'kafka.bootstrapp' (did you mean 'kafka.bootstrap'?)",
        f"{cfg}: unknown key 'alerts.thresold' (did you mean 'alerts.threshold'?)"]


def test_a_typo_inside_a_list_item_is_found(clean_env: Path):
    cfg = clean_env / "config.yaml"
    cfg.write_text("alerts:\n  webhooks:\n    - url: http://a\n    - urll: http://b\n")
    assert problems(path=cfg) == [
        f"{cfg}: unknown key 'alerts.webhooks[1].urll' (did you mean 'alerts.webhooks[1].url'?)"]


def test_an_unknown_top_level_key_lists_the_valid_ones_when_nothing_is_close(clean_env: Path):
    cfg = clean_env / "config.yaml"
    cfg.write_text("zzz: 1\n")
    [line] = problems(path=cfg)
    assert line.startswith(f"{cfg}: unknown key 'zzz' (valid: kafka, elasticsearch, batch,")


@pytest.mark.parametrize(("name", "suggestion"), [
    ("MARKETPULSE_ALERTS__THRESHOLDD", "MARKETPULSE_ALERTS__THRESHOLD"),
    ("MARKETPULSE_KAFKAA__BOOTSTRAP", "MARKETPULSE_KAFKA__BOOTSTRAP"),
    ("MARKETPULSE_CONFG", "MARKETPULSE_CONFIG"),
    ("MARKETPULSE_LOG_LEVEL__DEBUG", "MARKETPULSE_LOG_LEVEL"),
])
def test_an_unknown_marketpulse_variable_is_an_error_with_a_suggestion(clean_env, monkeypatch, name, suggestion):
    monkeypatch.setenv(name, "1")
    assert problems() == [f"environment: unknown variable {name} (did you mean {suggestion}?)"]


def test_a_typo_in_a_json_valued_variable_is_found(clean_env, monkeypatch):
    monkeypatch.setenv("MARKETPULSE_ALERTS__WEBHOOKS", '[{"url": "http://a", "formatt": "slack"}]')
    assert problems() == ["environment: unknown key 'alerts.webhooks[0].formatt' (did you mean "
                          "'alerts.webhooks[0].format'?) in MARKETPULSE_ALERTS__WEBHOOKS"]


def test_other_variables_and_the_documented_non_settings_are_never_errors(clean_env, monkeypatch):
    for name in NON_SETTING_ENV - {"MARKETPULSE_CONFIG", "MARKETPULSE_SECRETS_DIR"}:  # those two name paths
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("ELASTIC_PASSWORD", "x")
    monkeypatch.setenv("MARKETPULSEX", "x")
    assert Settings().kafka.bootstrap == "127.0.0.1:9092"


def test_every_marketpulse_variable_the_repository_uses_is_a_setting_or_documented(clean_env, monkeypatch):
    """Scripts, compose files, the Makefile, benches and tests use these names: none may become an error."""
    import re

    from marketpulse.settings import REPO_ROOT, unknown_env_vars

    files = [p for d in ("marketpulse", "stream", "models", "consumers", "dashboards", "bench", "scripts", "tests")
             for p in (REPO_ROOT / d).rglob("*") if p.is_file() and p.suffix in ("", ".py", ".sh", ".yml", ".yaml")]
    files += [REPO_ROOT / n for n in ("Makefile", "Dockerfile", "docker-compose.yml", ".env.example")]
    # Tests that misspell names on purpose are not usage.
    files = [p for p in files if p.name not in ("test_settings.py", "test_cli.py", "test_cli_errors.py")]
    used = {m for p in files if p.exists() for m in re.findall(r"MARKETPULSE_[A-Z0-9_]*[A-Z0-9]", p.read_text(
        errors="ignore"))}
    assert "MARKETPULSE_REQUIRE_STACK" in used and "MARKETPULSE_KAFKA__BOOTSTRAP" in used
    assert unknown_env_vars((n, "") for n in used) == []


# --- where settings come from -----------------------------------------------------------------

def test_sources_apply_in_the_documented_order(clean_env: Path, monkeypatch):
    """arguments > environment > .env > YAML > secret files > defaults, key by key."""
    secrets = clean_env / "secrets"
    secrets.mkdir()
    for name, value in {"MARKETPULSE_LOG_LEVEL": "from-secret", "MARKETPULSE_METRICS_HOST": "from-secret",
                        "MARKETPULSE_KAFKA__CLIENT_ID": "from-secret", "MARKETPULSE_KAFKA__WORKER_GROUP": "from-secret",
                        "MARKETPULSE_KAFKA__ALERTER_GROUP": "from-secret"}.items():
        (secrets / name).write_text(value)
    monkeypatch.setenv("MARKETPULSE_SECRETS_DIR", str(secrets))
    cfg = clean_env / "config.yaml"
    cfg.write_text("log_level: from-yaml\nmetrics_host: from-yaml\nkafka:\n  client_id: from-yaml\n"
                   "  worker_group: from-yaml\n")
    (clean_env / ".env").write_text("MARKETPULSE_LOG_LEVEL=from-dotenv\nMARKETPULSE_METRICS_HOST=from-dotenv\n"
                                    "MARKETPULSE_KAFKA__CLIENT_ID=from-dotenv\nELASTIC_PASSWORD=compose-only\n")
    monkeypatch.setenv("MARKETPULSE_LOG_LEVEL", "from-env")
    monkeypatch.setenv("MARKETPULSE_METRICS_HOST", "from-env")
    s = Settings.load(cfg, log_level="from-arguments")
    assert s.log_level == "from-arguments"
    assert s.metrics_host == "from-env"
    assert s.kafka.client_id == "from-dotenv"
    assert s.kafka.worker_group == "from-yaml"
    assert s.kafka.alerter_group == "from-secret"
    assert s.kafka.es_sink_group == "marketpulse-es-sink"  # default
    assert s.config_file == cfg


def test_secret_files_fill_nested_secrets_other_files_are_left_alone_and_typos_are_errors(clean_env: Path, monkeypatch):
    secrets = clean_env / "secrets"
    secrets.mkdir()
    (secrets / "MARKETPULSE_ELASTICSEARCH__PASSWORD").write_text("s3cret\n")
    (secrets / "keystore.p12").write_bytes(b"\xff\xfe binary: another program's secret, not read")
    monkeypatch.setenv("MARKETPULSE_SECRETS_DIR", str(secrets))
    assert Settings().elasticsearch.password.get_secret_value() == "s3cret"
    (secrets / "MARKETPULSE_ELASTICSEARCH__PASWORD").write_text("x")
    assert problems() == [f"secrets in {secrets}: unknown file MARKETPULSE_ELASTICSEARCH__PASWORD "
                          f"(did you mean MARKETPULSE_ELASTICSEARCH__PASSWORD?)"]


def test_a_typo_in_the_dotenv_file_is_an_error(clean_env: Path):
    (clean_env / ".env").write_text("MARKETPULSE_KAFKA__BOOTSTRAPP=x\nGRAFANA_ADMIN_PASSWORD=y\n")
    assert problems() == [".env: unknown variable MARKETPULSE_KAFKA__BOOTSTRAPP "
                          "(did you mean MARKETPULSE_KAFKA__BOOTSTRAP?)"]


def test_a_config_file_that_is_not_yaml_or_not_a_mapping_is_one_clear_problem(clean_env: Path):
    cfg = clean_env / "config.yaml"
    cfg.write_text("alerts:\n  threshold: [\n")
    [line] = problems(path=cfg)
    assert line.startswith(f"{cfg}: invalid YAML at line 3")
    cfg.write_text("- kafka\n")
    assert problems(path=cfg) == [f"{cfg}: must hold a mapping of settings at the top level, not a list"]
    cfg.write_bytes(b"log_level: \xff\n")
    assert problems(path=cfg) == [f"{cfg}: not UTF-8 text (line 1: byte 0xff)"]


def test_unknown_keys_passed_in_code_are_refused_too(clean_env):
    assert problems(alerts={"thresold": 4}) == ["arguments: unknown key 'alerts.thresold' "
                                                "(did you mean 'alerts.threshold'?)"]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AlertSettings(thresold=4)


def test_kafka_connect_timeout_bounds_the_wait_for_a_broker():
    assert 0 < Settings().kafka.connect_timeout_s <= 10


def test_the_worker_and_alerter_refuse_the_public_default_secrets_unless_told_it_is_an_experiment():
    from marketpulse.settings import ConfigError

    s = Settings(alerts={"webhooks": [{"url": "https://hooks.example.com/a"}]})
    assert s.insecure_defaults(worker=True, alerter=True) == ["pseudonym_key", "alerts.webhook_secret"]
    with pytest.raises(ConfigError, match="pseudonym_key is the public default"):
        s.require_own_secrets(worker=True)
    with pytest.raises(ConfigError, match="alerts.webhook_secret is the public default"):
        s.require_own_secrets(alerter=True)
    # an endpoint with its own secret does not use the default one
    own = Settings(pseudonym_key="k" * 32, alerts={"webhooks": [{"url": "https://h.example.com/a", "secret": "s"}]})
    own.require_own_secrets(worker=True, alerter=True)
    Settings(allow_insecure_defaults=True).require_own_secrets(worker=True, alerter=True)


def test_the_demo_makes_its_own_keys_once_per_state_folder(tmp_path):
    from marketpulse.demo import demo_secrets

    s = Settings(state_dir=tmp_path, alerts={"webhooks": [{"url": "https://h.example.com/a"}]})
    first = demo_secrets(s)
    assert set(first) == {"MARKETPULSE_PSEUDONYM_KEY", "MARKETPULSE_ALERTS__WEBHOOK_SECRET"}
    assert demo_secrets(s) == first and len(first["MARKETPULSE_PSEUDONYM_KEY"]) == 64
    assert (tmp_path / "demo-secrets.json").stat().st_mode & 0o077 == 0
    assert demo_secrets(Settings(state_dir=tmp_path, pseudonym_key="mine")) == {}
