"""One typed settings object for every marketpulse process.

Values come from (highest first): explicit keyword arguments, ``MARKETPULSE_*`` environment
variables (nested fields use ``__``, e.g. ``MARKETPULSE_KAFKA__BOOTSTRAP``), an optional YAML file
(``MARKETPULSE_CONFIG`` or ``Settings.load(path)``), then the defaults below. Components receive the
object (or the part they need) as an argument; nothing reads the environment deep inside.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class TopicSettings(BaseModel):
    raw_news: str = "marketpulse.raw.news"
    raw_social: str = "marketpulse.raw.social"
    events: str = "marketpulse.events"
    deadletter: str = "marketpulse.deadletter"
    alerts: str = "marketpulse.alerts"
    webhook_deliveries: str = "marketpulse.webhook-deliveries"
    alerter_state: str = "marketpulse.alerter-state"
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, description="raw/labeled topic retention")

    def raw(self) -> list[str]:
        return [self.raw_news, self.raw_social]


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "marketpulse"
    worker_group: str = "marketpulse-worker"
    es_sink_group: str = "marketpulse-es-sink"
    alerter_group: str = "marketpulse-alerter"
    topics: TopicSettings = TopicSettings()


class ElasticsearchSettings(BaseModel):
    url: str = "http://127.0.0.1:9200"
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    index_prefix: str = "marketpulse-events"
    alerts_index: str = "marketpulse-alerts"
    deliveries_index: str = "marketpulse-webhook-deliveries"
    request_timeout_s: float = 30.0
    bulk_max_docs: int = Field(500, ge=1)
    archive_after_days: int = Field(90, ge=1, description="events published longer ago go to one "
                                                          "<index_prefix>-archive index, not one index per day")

    def client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"hosts": [self.url], "request_timeout": self.request_timeout_s}
        if self.api_key is not None:
            kw["api_key"] = self.api_key.get_secret_value()
        elif self.username:
            kw["basic_auth"] = (self.username, self.password.get_secret_value() if self.password else "")
        return kw


class BatchSettings(BaseModel):
    max_size: int = Field(64, ge=1, description="records per micro-batch")
    max_latency_ms: int = Field(50, ge=1, description="longest wait to fill a micro-batch")
    max_text_chars: int = Field(20_000, ge=1, description="longer texts are dead-lettered as oversize")


class ModelSettings(BaseModel):
    backend: Literal["auto", "torch", "onnx", "onnx-int8", "tensorrt"] = "auto"
    artifact_dir: Path = REPO_ROOT / "models" / "artifacts" / "default"
    build_dir: Path = REPO_ROOT / "models" / "build"
    data_dir: Path = REPO_ROOT.parent / "shared" / "data" / "financial-tweets"
    max_length: int = Field(128, ge=8)
    device: str = "auto"
    explain_negative: bool = True


class EventTimeSettings(BaseModel):
    max_future_skew_s: int = Field(300, ge=0, description="events dated further ahead of the wall clock are "
                                                          "dead-lettered by the worker and cannot move event time")


class WebhookEndpoint(BaseModel):
    url: str
    format: Literal["json", "slack"] = "json"
    secret: SecretStr | None = None
    timeout_s: float = 5.0
    max_attempts: int | None = Field(None, ge=1, description="give up after this many attempts (default: "
                                                            "only the time budget limits retries)")
    retry_budget_s: float = Field(3600.0, gt=0, description="give up once the first attempt is this old")


class AlertSettings(BaseModel):
    bucket_s: int = Field(60, ge=1, description="time bucket length")
    baseline_buckets: int = Field(180, ge=4, description="trailing buckets in the robust baseline")
    warmup_buckets: int = Field(15, ge=1)
    min_volume: float = Field(5.0, ge=0, description="minimum negative volume for an alert")
    threshold: float = Field(3.5, gt=0, description="robust z-score that opens an incident")
    critical_threshold: float = Field(8.0, gt=0)
    clear_threshold: float = Field(2.0, ge=0, description="hysteresis: score below which it closes")
    cooldown_buckets: int = Field(15, ge=0)
    allowed_lateness_s: int = Field(15, ge=0, description="how long a bucket waits for late events")
    idle_flush_s: float = Field(5.0, gt=0, description="no events this long: event time moves with the clock")
    snapshot_interval_s: float = Field(10.0, gt=0, description="how often alerter state is saved to Kafka")
    max_tickers_per_event: int = Field(10, ge=1, description="an event counts toward at most this many ticker "
                                                             "keys, the most relevant first (cashtag spam)")
    max_keys: int = Field(5000, ge=3, description="live keys (one detector each); beyond it the longest-quiet "
                                                  "key is forgotten to make room")
    webhooks: list[WebhookEndpoint] = []
    webhook_secret: SecretStr = SecretStr("change-me")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "AlertSettings":
        if not self.clear_threshold < self.threshold <= self.critical_threshold:
            raise ValueError("alerts: need clear_threshold < threshold <= critical_threshold")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETPULSE_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    batch: BatchSettings = BatchSettings()
    model: ModelSettings = ModelSettings()
    alerts: AlertSettings = AlertSettings()
    event_time: EventTimeSettings = EventTimeSettings()
    pseudonym_key: SecretStr = SecretStr("marketpulse-local-pseudonym-key")
    metrics_port: int = Field(0, ge=0, description="Prometheus port; 0 serves none")
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoint binds to")
    state_dir: Path = Field(REPO_ROOT / ".state", description="local state (faust data, caches)")
    log_level: str = "INFO"
    config_file: Path | None = Field(None, description="optional YAML file with any of these fields")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "Settings":
        if path is not None:
            overrides["config_file"] = Path(path)
        return cls(**overrides)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by MARKETPULSE_CONFIG (or the config_file init argument)."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)

    def get_field_value(self, field, field_name):  # pragma: no cover - unused, __call__ does it all
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config_file") or os.environ.get("MARKETPULSE_CONFIG")
        if not path:
            return {}
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a mapping at the top level")
        return data
