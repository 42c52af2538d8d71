"""One typed settings object for every marketpulse process.

Values come from these sources, highest first:

1. explicit keyword arguments (``Settings(...)``, ``Settings.load(path, **overrides)``);
2. ``MARKETPULSE_*`` environment variables (nested fields use ``__``, e.g. ``MARKETPULSE_KAFKA__BOOTSTRAP``);
3. a ``.env`` file in the working directory, same names as the environment variables;
4. the YAML file: ``--config`` / ``Settings.load(path)``, else ``MARKETPULSE_CONFIG`` (environment or ``.env``);
5. secret files, one per setting and named like its environment variable
   (``MARKETPULSE_ELASTICSEARCH__PASSWORD``), in ``MARKETPULSE_SECRETS_DIR``, else in ``/run/secrets``
   when that directory exists;
6. the defaults below.

Nested sections merge key by key across sources. Every source is strict: an unknown key in the YAML
file (at any depth, list items included), an unknown ``MARKETPULSE_*`` variable in the environment or
``.env``, or an unknown ``MARKETPULSE_*`` secret file raises ``ConfigError`` naming the key and the
closest valid one. ``MARKETPULSE_*`` variables that are not settings are listed in ``NON_SETTING_ENV``.
Components receive the object (or the part they need) as an argument; nothing reads the environment
deep inside.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer, model_validator
from pydantic_settings import (BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict,
                               YamlConfigSettingsSource)

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "MARKETPULSE_"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
DEFAULT_PSEUDONYM_KEY = "marketpulse-local-pseudonym-key"
DEFAULT_WEBHOOK_SECRET = "change-me"

# MARKETPULSE_* variables that are not settings, so the strict check lets them pass: where the
# settings come from, CLI switches, docker compose's .env, scripts/stack.sh, the tests and benches.
NON_SETTING_ENV = frozenset({
    "MARKETPULSE_CONFIG",  # path of the YAML file
    "MARKETPULSE_SECRETS_DIR",  # directory of secret files
    "MARKETPULSE_DEBUG",  # CLI: a traceback instead of the one-line error
    "MARKETPULSE_WEBHOOK_SECRET",  # docker-compose.yml maps it to MARKETPULSE_ALERTS__WEBHOOK_SECRET
    "MARKETPULSE_CACHE_DIR", "MARKETPULSE_STACK_WAIT_S", "MARKETPULSE_KAFKA_VERSION", "MARKETPULSE_ES_VERSION",
    "MARKETPULSE_KAFKA_PORT", "MARKETPULSE_KAFKA_CONTROLLER_PORT", "MARKETPULSE_KAFKA_HEAP",
    "MARKETPULSE_ES_PORT", "MARKETPULSE_ES_HEAP", "MARKETPULSE_ES_USER",  # scripts/stack.sh
    "MARKETPULSE_STACK_SECURE", "MARKETPULSE_KAFKA_SECURE_PORT", "MARKETPULSE_ES_SECURE_PORT",  # its secured mode
    "MARKETPULSE_REQUIRE_STACK", "MARKETPULSE_TEST_GRAFANA_URL", "MARKETPULSE_TEST_GRAFANA_API_KEY",  # tests
    "MARKETPULSE_NAB_DIR",  # bench/nab.py
})


class ConfigError(ValueError):
    """Settings that cannot be used as given; each problem is one line naming its source and key."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored extra.
    model_config = ConfigDict(extra="forbid")


class TopicSettings(_Section):
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


class KafkaSecurity(_Section):
    """How every Kafka client of marketpulse connects (producers, consumers, admin, the faust worker)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="PEM CA bundle that signed the brokers' certificates "
                                                   "(default: the system's trust store)")
    cert_file: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: Path | None = Field(None, description="client private key (PEM) for mutual TLS")
    key_password: SecretStr | None = None
    check_hostname: bool = Field(True, description="the broker's certificate must name the host connected to")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _complete(self) -> "KafkaSecurity":
        if self.uses_sasl and not (self.username and self.password):
            raise ValueError(f"protocol {self.protocol} needs username and password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both cert_file and key_file")
        if not self.uses_tls and (self.ca_file or self.cert_file):
            raise ValueError(f"ca_file/cert_file are for SSL or SASL_SSL, not {self.protocol}")
        return self


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "marketpulse"
    worker_group: str = "marketpulse-worker"
    es_sink_group: str = "marketpulse-es-sink"
    alerter_group: str = "marketpulse-alerter"
    connect_timeout_s: float = Field(8.0, gt=0, description="how long a command waits for a first broker "
                                                            "before it gives up (exit code 3)")
    topics: TopicSettings = TopicSettings()
    security: KafkaSecurity = KafkaSecurity()


class ElasticsearchSettings(_Section):
    url: str = "http://127.0.0.1:9200"
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="PEM CA bundle for an https url (default: the system's)")
    ssl_fingerprint: str | None = Field(None, description="SHA-256 fingerprint of the server certificate "
                                                          "(hex, as Elasticsearch prints at first start)")
    verify_certs: bool = Field(True, description="check the server certificate; off only for experiments")
    index_prefix: str = "marketpulse-events"
    alerts_index: str = "marketpulse-alerts"
    deliveries_index: str = "marketpulse-webhook-deliveries"
    request_timeout_s: float = 30.0
    bulk_max_docs: int = Field(500, ge=1)
    retention_days: int | None = Field(365, ge=1, description="daily event indices are deleted this many days "
                                                              "after their day (None: kept)")
    number_of_shards: int = Field(1, ge=1, description="of each daily events index")
    number_of_replicas: int = Field(0, ge=0, description="of each daily events index (0 on one node)")
    refresh_interval: str = Field("1s", pattern=r"^(-1|[1-9][0-9]*(ms|s|m|h|d))$",
                                  description="how often new events become searchable in each daily events "
                                              "index (an Elasticsearch time: 200ms, 1s, 30s; -1 only on an "
                                              "explicit refresh); shorter means fresher results and more "
                                              "segment merging. Applies to indices created from then on")
    archive_after_days: int = Field(90, ge=1, description="events published longer ago go to one "
                                                          "<index_prefix>-archive index, not one index per day")

    def client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"hosts": [self.url], "request_timeout": self.request_timeout_s}
        if self.api_key is not None:
            kw["api_key"] = self.api_key.get_secret_value()
        elif self.username:
            kw["basic_auth"] = (self.username, self.password.get_secret_value() if self.password else "")
        if self.url.startswith("https:"):
            if self.ca_file is not None:
                kw["ca_certs"] = str(self.ca_file)
            if self.ssl_fingerprint:
                kw["ssl_assert_fingerprint"] = self.ssl_fingerprint.replace(":", "").lower()
            kw["verify_certs"] = self.verify_certs
        return kw


class BatchSettings(_Section):
    max_size: int = Field(64, ge=1, description="records per micro-batch")
    max_latency_ms: int = Field(50, ge=1, description="longest wait to fill a micro-batch")
    max_text_chars: int = Field(20_000, ge=1, description="longer texts are dead-lettered as oversize")


class ModelSettings(_Section):
    backend: Literal["auto", "torch", "onnx", "onnx-int8", "tensorrt"] = "auto"
    artifact_dir: Path = REPO_ROOT / "models" / "artifacts" / "default"
    build_dir: Path = REPO_ROOT / "models" / "build"
    data_dir: Path = REPO_ROOT.parent / "shared" / "data" / "financial-tweets"
    max_length: int = Field(128, ge=8)
    device: str = "auto"
    threads: int | None = Field(None, ge=1, description="threads of the model (onnxruntime: forward passes side by side, "
                                                        "one thread each; torch: intra-op); "
                                                        "None: one per usable core. "
                                                        "Several workers on one machine: cores / workers each")
    explain_negative: bool = Field(False, description="the worker also explains every negative record (the words "
                                                      "that raised P(negative) in its explanation field); ~11x the "
                                                      "model cost of a negative record, so off by default")


class EventTimeSettings(_Section):
    max_future_skew_s: int = Field(300, ge=0, description="events dated further ahead of the wall clock are "
                                                          "dead-lettered by the worker and cannot move event time")


def mask_url(url: str) -> str:
    """A URL safe to show: scheme and host, the rest replaced by a short hash that still tells
    endpoints apart. Webhook URLs are bearer secrets (a Slack hook's path is its only key)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "***"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/***{digest}"


class WebhookEndpoint(_Section):
    url: str = Field(..., description="shown masked (scheme, host and a hash) in logs, settings and the delivery log")
    format: Literal["json", "slack"] = "json"
    secret: SecretStr | None = None
    timeout_s: float = 5.0
    max_attempts: int | None = Field(None, ge=1, description="give up after this many attempts (default: "
                                                            "only the time budget limits retries)")
    retry_budget_s: float = Field(3600.0, gt=0, description="give up once the first attempt is this old")

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @field_serializer("url", when_used="json")
    def _url_masked(self, url: str) -> str:
        return mask_url(url)


class AlertSettings(_Section):
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
    explain_top_events: bool = Field(True, description="each alert's top events carry the words that raised "
                                                       "P(negative) the most (the model is loaded at the first alert)")
    webhooks: list[WebhookEndpoint] = []
    webhook_secret: SecretStr = Field(SecretStr(DEFAULT_WEBHOOK_SECRET), description="HMAC secret of endpoints "
                                      "without their own; the alerter refuses the public default")

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> "AlertSettings":
        if not self.clear_threshold < self.threshold <= self.critical_threshold:
            raise ValueError(f"need clear_threshold < threshold <= critical_threshold (got {self.clear_threshold:g}, "
                             f"{self.threshold:g}, {self.critical_threshold:g})")
        return self


class Settings(BaseSettings):
    # extra="ignore" at the top only: .env may hold docker compose's other variables. Unknown keys
    # are still refused, by _check_sources, which can say where each one came from.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_file=".env",
                                      extra="ignore")

    kafka: KafkaSettings = KafkaSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    batch: BatchSettings = BatchSettings()
    model: ModelSettings = ModelSettings()
    alerts: AlertSettings = AlertSettings()
    event_time: EventTimeSettings = EventTimeSettings()
    pseudonym_key: SecretStr = Field(SecretStr(DEFAULT_PSEUDONYM_KEY), description="HMAC key of @handle "
                                     "pseudonyms; the worker refuses the public default")
    allow_insecure_defaults: bool = Field(False, description="let the worker and alerter run with the public "
                                                             "default keys (local experiments only)")
    metrics_port: int = Field(0, ge=0, description="Prometheus port; 0 serves none")
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoint binds to")
    state_dir: Path = Field(REPO_ROOT / ".state", description="local state (faust data, caches)")
    log_level: str = "INFO"
    config_file: Path | None = Field(None, description="the YAML file these settings were read from")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        dotenv: Mapping[str, str | None] = getattr(dotenv_settings, "env_vars", {})

        def named(name: str) -> str | None:
            """A source location from the environment, else from .env."""
            return os.environ.get(name) or dotenv.get(name.lower()) or None

        config = init_kwargs.get("config_file") or named("MARKETPULSE_CONFIG_FILE") or named("MARKETPULSE_CONFIG")
        yaml_source = _StrictYamlSource(settings_cls, Path(config)) if config else None
        secrets_source = _secrets_source(file_secret_settings, named("MARKETPULSE_SECRETS_DIR"))
        _check_sources(init_kwargs, dotenv, yaml_source, secrets_source)
        return tuple(s for s in (init_settings, env_settings, dotenv_settings, yaml_source, secrets_source) if s)

    def insecure_defaults(self, *, worker: bool = False, alerter: bool = False) -> list[str]:
        """The public default secrets a worker or alerter would run with: anyone could recompute
        the pseudonyms, or sign webhook calls the analysts' receivers accept."""
        found = []
        if worker and self.pseudonym_key.get_secret_value() == DEFAULT_PSEUDONYM_KEY:
            found.append("pseudonym_key")
        if alerter and self.alerts.webhook_secret.get_secret_value() == DEFAULT_WEBHOOK_SECRET and any(
                ep.secret is None for ep in self.alerts.webhooks):
            found.append("alerts.webhook_secret")
        return found

    def require_own_secrets(self, *, worker: bool = False, alerter: bool = False) -> None:
        """ConfigError unless the secrets the process uses are the user's own (or the dev flag is set)."""
        found = self.insecure_defaults(worker=worker, alerter=alerter)
        if found and not self.allow_insecure_defaults:
            raise ConfigError([f"{name} is the public default: set your own (e.g. "
                               f"{ENV_PREFIX}{name.upper().replace('.', '__')}=$(openssl rand -hex 32)), or set "
                               f"allow_insecure_defaults for local experiments" for name in found])

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "Settings":
        """Settings with the YAML file at path (else MARKETPULSE_CONFIG, if set) and overrides on top."""
        if path is not None:
            overrides["config_file"] = Path(path)
        return cls(**overrides)


class _StrictYamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, with one-line errors for a missing or unreadable file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path):
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
        self.path = path
        super().__init__(settings_cls, yaml_file=path)
        # The settings say which file they came from.
        self.init_kwargs.setdefault("config_file", path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        raw = Path(file_path).read_bytes()
        try:
            data = yaml.safe_load(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1  # e.start counts after a byte-order mark, close enough
            raise ConfigError([f"{file_path}: not UTF-8 text (line {line}: byte {e.object[e.start]:#04x})"]) from None
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise ConfigError([f"{file_path}: invalid YAML{at}: {getattr(e, 'problem', None) or e}"]) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError([f"{file_path}: must hold a mapping of settings at the top level, "
                               f"not a {type(data).__name__}"])
        return data


class _SecretFilesSource(EnvSettingsSource):
    """One file per secret, named like its environment variable (MARKETPULSE_ELASTICSEARCH__PASSWORD).

    Only MARKETPULSE_* files are read: a shared directory such as /run/secrets also holds other
    programs' secrets, binary ones included."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path, _init_state: Any = None):
        self.directory = directory
        super().__init__(settings_cls, env_ignore_empty=False, _init_state=_init_state)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        secrets = {}
        for path in sorted(self.directory.iterdir()):
            if path.name.upper().startswith(ENV_PREFIX) and path.is_file():
                try:
                    secrets[path.name.lower()] = path.read_text(encoding="utf-8").strip()
                except UnicodeDecodeError:
                    raise ConfigError([f"secret file {path}: not UTF-8 text"]) from None
        return secrets


def _secrets_source(file_secret_settings: PydanticBaseSettingsSource,
                    configured: str | None) -> _SecretFilesSource | None:
    """Secret files from MARKETPULSE_SECRETS_DIR, else /run/secrets (docker's secrets) if it exists."""
    if configured:
        directory = Path(configured)
        if not directory.is_dir():
            raise ConfigError([f"MARKETPULSE_SECRETS_DIR: {directory} is not a directory"])
    elif DEFAULT_SECRETS_DIR.is_dir():
        directory = DEFAULT_SECRETS_DIR
    else:
        return None
    return _SecretFilesSource(file_secret_settings.settings_cls, directory,
                              _init_state=getattr(file_secret_settings, "_init_state", None))


def _check_sources(init_kwargs: Mapping[str, Any], dotenv: Mapping[str, str | None],
                   yaml_source: "_StrictYamlSource | None", secrets_source: "_SecretFilesSource | None") -> None:
    problems = [f"arguments: {p}" for p in unknown_keys(Settings, init_kwargs)]
    problems += [f"environment: {p}" for p in unknown_env_vars(os.environ.items())]
    problems += [f".env: {p}" for p in unknown_env_vars(dotenv.items())]
    if yaml_source is not None:
        problems += [f"{yaml_source.path}: {p}" for p in unknown_keys(Settings, yaml_source.yaml_data)]
    if secrets_source is not None:
        problems += [f"secrets in {secrets_source.directory}: {p}"
                     for p in unknown_env_vars(secrets_source.env_vars.items(), what="file")]
    if problems:
        raise ConfigError(problems)


# --- unknown keys -----------------------------------------------------------------------------

def _shape(annotation: Any) -> tuple[str, Any] | None:
    """What a field holds, as far as keys go: ("model", M), ("items", shape), ("values", shape) or None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return next((s for a in get_args(annotation) if (s := _shape(a)) is not None), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    args = get_args(annotation)
    if origin in (list, tuple, set, frozenset, Sequence) and args:
        inner = _shape(args[0])
        return ("items", inner) if inner else None
    if origin in (dict, Mapping) and len(args) == 2:
        inner = _shape(args[1])
        return ("values", inner) if inner else None
    return None


def _field(model: type[BaseModel], key: str, any_case: bool = False) -> Any:
    fields = model.model_fields
    if key in fields:
        return fields[key]
    if any_case:  # top-level keys, like pydantic-settings itself
        return next((f for name, f in fields.items() if name.lower() == key.lower()), None)
    return None


def _closest(key: str, candidates: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(key.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
    return match[0] if match else None


def _unknown(path: str, key: str, model: type[BaseModel]) -> str:
    prefix = path[: len(path) - len(key)]
    best = _closest(key, model.model_fields)
    if best:
        return f"unknown key '{path}' (did you mean '{prefix}{best}'?)"
    return f"unknown key '{path}' (valid: {', '.join(model.model_fields)})"


def unknown_keys(model: type[BaseModel], data: Any, path: str = "") -> list[str]:
    """One message per key of data (nested mappings and list items too) that model does not have."""
    return _walk(("model", model), data, path, top=not path)


def _walk(shape: tuple[str, Any] | None, data: Any, path: str, top: bool = False) -> list[str]:
    if shape is None:
        return []
    kind, inner = shape
    out: list[str] = []
    if kind == "model" and isinstance(data, Mapping):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            field = _field(inner, str(key), any_case=top)
            out += [_unknown(here, str(key), inner)] if field is None else _walk(_shape(field.annotation), value, here)
    elif kind == "items" and isinstance(data, (list, tuple)):
        for i, item in enumerate(data):
            out += _walk(inner, item, f"{path}[{i}]")
    elif kind == "values" and isinstance(data, Mapping):
        for key, value in data.items():
            out += _walk(inner, value, f"{path}.{key}")
    return out


def unknown_env_vars(items: Iterable[tuple[str, str | None]], what: str = "variable") -> list[str]:
    """One message per MARKETPULSE_* name that is neither a setting nor in NON_SETTING_ENV.

    Names are matched without regard to case, as pydantic-settings does; other names never count."""
    out = []
    for name, value in sorted(items, key=lambda kv: kv[0].upper()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_ENV:
            continue
        problem = _env_problem(upper, value)
        if problem:
            out.append(problem if problem.startswith("unknown key") else f"unknown {what} {upper}{problem}")
    return out


def _env_problem(name: str, value: str | None) -> str | None:
    """None for a known setting, else what follows the name in the message."""
    parts = name[len(ENV_PREFIX):].lower().split("__")
    model: type[BaseModel] | None = Settings
    shape: tuple[str, Any] | None = None
    for i, part in enumerate(parts):
        field = _field(model, part) if model is not None else None
        if field is None:
            if model is None:  # a plain value has no keys below it
                return f" (did you mean {ENV_PREFIX}{'__'.join(parts[:i]).upper()}?)"
            candidates = list(model.model_fields)
            if model is Settings:
                candidates += [n[len(ENV_PREFIX):].lower() for n in NON_SETTING_ENV]
            best = _closest(part, candidates)
            if not best:
                return " (no such setting; `marketpulse settings` prints them all)"
            return f" (did you mean {ENV_PREFIX}{'__'.join([*parts[:i], best, *parts[i + 1:]]).upper()}?)"
        shape = _shape(field.annotation)
        if shape is not None and shape[0] == "values":
            return None  # keys below a mapping field are its own
        model = shape[1] if shape is not None and shape[0] == "model" else None
    # A whole section as JSON (MARKETPULSE_ALERTS__WEBHOOKS='[...]'): its keys are checked too.
    if shape is not None and value:
        try:
            data = json.loads(value)
        except ValueError:
            return None
        problems = _walk(shape, data, ".".join(parts))
        if problems:
            return f"{problems[0]} in {name}"
    return None


def settings_models() -> dict[str, type[BaseModel]]:
    """Settings and its sections, by class name (what a ValidationError's title says)."""
    return {m.__name__: m for m in (Settings, *_Section.__subclasses__())}


def hint_for(model_name: str, loc: Sequence[str | int]) -> str | None:
    """The closest valid key for an extra key at loc of the named settings model, as a dotted path."""
    shape: tuple[str, Any] | None = ("model", settings_models().get(model_name))
    if shape[1] is None:
        return None
    for part in loc[:-1]:
        if shape is None:
            return None
        kind, inner = shape
        if kind == "model":
            field = _field(inner, str(part))
            if field is None:
                return None
            shape = _shape(field.annotation)
        else:
            shape = inner
    if shape is None or shape[0] != "model":
        return None
    best = _closest(str(loc[-1]), shape[1].model_fields)
    return dotted_key([*loc[:-1], best]) if best else None


def dotted_key(loc: Sequence[str | int]) -> str:
    """('alerts', 'webhooks', 0, 'url') -> 'alerts.webhooks[0].url'."""
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
