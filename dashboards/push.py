"""Create or update the marketpulse datasources, folder and dashboards in a running Grafana.

Idempotent: datasources and dashboards are addressed by their fixed uids, so pushing twice updates
in place. Grafana-specific errors are turned into `PushError` with a one-line message for the CLI.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marketpulse.settings import ElasticsearchSettings

DASHBOARD_DIR = Path(__file__).resolve().parent
PROVISIONING_DIR = DASHBOARD_DIR / "provisioning"

EVENTS_UID = "marketpulse-es-events"
ALERTS_UID = "marketpulse-es-alerts"
PROMETHEUS_UID = "marketpulse-prometheus"


class PushError(Exception):
    """A failure worth one line to the user (auth, connection, rejected payload)."""


def dashboard_files() -> list[Path]:
    """The dashboard JSON files Grafana provisions from this folder (it scans *.json)."""
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model."""
    out: dict[str, dict[str, Any]] = {}
    for path in dashboard_files():
        model = json.loads(path.read_text())
        out[model["uid"]] = model
    return out


def provisioned_datasources() -> list[dict[str, Any]]:
    """Datasources as declared in provisioning/datasources/*.yaml (what docker compose loads)."""
    sources: list[dict[str, Any]] = []
    for path in sorted((PROVISIONING_DIR / "datasources").glob("*.y*ml")):
        sources.extend(yaml.safe_load(path.read_text()).get("datasources") or [])
    return sources


def es_indices(es_settings: ElasticsearchSettings | None = None, *, events_index: str | None = None,
               alerts_index: str | None = None) -> dict[str, str]:
    """Elasticsearch datasource uid -> the index it reads; an explicit name wins over the settings.

    Events: the read alias ``elasticsearch.index_prefix`` that the ES sink's daily indices join
    (consumers/es_index.py). Alerts: ``elasticsearch.alerts_index``, the index the alerter writes.
    Without settings, the `ElasticsearchSettings` defaults (nothing is read from the environment here).
    """
    es_settings = es_settings if es_settings is not None else ElasticsearchSettings()
    return {EVENTS_UID: events_index or es_settings.index_prefix,
            ALERTS_UID: alerts_index or es_settings.alerts_index}


def datasource_payloads(es_url: str, prometheus_url: str | None,
                        events_index: str | None = None, alerts_index: str | None = None, *,
                        es_settings: ElasticsearchSettings | None = None) -> list[dict[str, Any]]:
    """The provisioning YAML turned into API payloads, with URLs as seen from the target Grafana.

    The Elasticsearch datasources carry the index names (from `es_indices`); the dashboards only
    reference the datasources by uid, so they need no rewriting.
    """
    indices = es_indices(es_settings, events_index=events_index, alerts_index=alerts_index)
    payloads = []
    for ds in provisioned_datasources():
        body = {k: ds[k] for k in ("name", "uid", "type", "access", "url") if k in ds}
        body["jsonData"] = dict(ds.get("jsonData") or {})
        body["isDefault"] = bool(ds.get("isDefault", False))
        if ds["type"] == "elasticsearch":
            body["url"] = es_url
            if ds["uid"] in indices:
                body["jsonData"]["index"] = indices[ds["uid"]]
            if es_settings is not None:
                _with_es_auth(body, es_settings)
        elif ds["type"] == "prometheus":
            if not prometheus_url:
                continue  # the pipeline dashboard then shows "datasource not found" until one is pushed
            body["url"] = prometheus_url
        payloads.append(body)
    return payloads


def _with_es_auth(body: dict[str, Any], es: ElasticsearchSettings) -> None:
    """Grafana queries Elasticsearch itself: it needs the same credentials and trust as marketpulse
    (secrets go to secureJsonData, which Grafana encrypts and never returns)."""
    secure: dict[str, str] = {}
    if es.api_key is not None:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"ApiKey {es.api_key.get_secret_value()}"
    elif es.username:
        body["basicAuth"] = True
        body["basicAuthUser"] = es.username
        secure["basicAuthPassword"] = es.password.get_secret_value() if es.password else ""
    if es.url.startswith("https:"):
        if es.ca_file is not None:
            body["jsonData"]["tlsAuthWithCACert"] = True
            secure["tlsCACert"] = Path(es.ca_file).read_text()
        if not es.verify_certs:
            body["jsonData"]["tlsSkipVerify"] = True
    if secure:
        body["secureJsonData"] = secure


@dataclass
class PushReport:
    datasources: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)
    folder: str = ""

    def lines(self) -> list[str]:
        return [f"folder {self.folder}", *self.datasources, *self.dashboards]


def _folder_uid(title: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in title.lower())[:40]


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


def push(api: Any, *, folder: str, es_url: str, prometheus_url: str | None,
         events_index: str | None = None, alerts_index: str | None = None,
         es_settings: ElasticsearchSettings | None = None) -> PushReport:
    """Upsert datasources, the folder and every dashboard through a `grafana_client.GrafanaApi`.

    Index names: explicit `events_index`/`alerts_index`, else `es_settings` (see `es_indices`).
    """
    from grafana_client.client import GrafanaClientError

    report = PushReport()
    for body in datasource_payloads(es_url, prometheus_url, events_index, alerts_index, es_settings=es_settings):
        try:
            existing = api.datasource.get_datasource_by_uid(body["uid"])
        except GrafanaClientError as exc:
            if not _is_missing(exc):
                raise
            existing = None
        if existing is None:
            api.datasource.create_datasource(body)
            report.datasources.append(f"datasource {body['uid']}: created")
        elif existing.get("readOnly"):
            # Provisioned from YAML: Grafana refuses API edits, and the YAML is already ours.
            report.datasources.append(f"datasource {body['uid']}: provisioned, left as is")
        else:
            api.datasource.update_datasource_by_uid(body["uid"], {**body, "id": existing.get("id")})
            report.datasources.append(f"datasource {body['uid']}: updated")

    folder_uid = _folder_uid(folder)
    try:
        api.folder.get_folder(folder_uid)
        report.folder = f"{folder} ({folder_uid}): exists"
    except GrafanaClientError as exc:
        if not _is_missing(exc):
            raise
        existing_uid = next((f["uid"] for f in api.folder.get_all_folders() if f.get("title") == folder), None)
        if existing_uid:
            # e.g. the folder file provisioning created, with a generated uid
            folder_uid = existing_uid
            report.folder = f"{folder} ({folder_uid}): exists"
        else:
            api.folder.create_folder(folder, uid=folder_uid)
            report.folder = f"{folder} ({folder_uid}): created"

    for uid, model in load_dashboards().items():
        model = {**model, "id": None}  # Grafana matches on uid; a stale numeric id would be rejected
        result = api.dashboard.update_dashboard(
            {"dashboard": model, "folderUid": folder_uid, "overwrite": True,
             "message": "marketpulse dashboards push"})
        report.dashboards.append(f"dashboard {uid}: {result.get('status', 'success')} (version {result.get('version')})")
    return report


def connect(url: str, api_key: str | None, user: str | None, password: str | None, timeout: float = 10.0) -> Any:
    from grafana_client import GrafanaApi

    if api_key and (user or password):
        raise PushError("give either --api-key or --user/--password, not both")
    if not api_key and not (user and password):
        raise PushError("credentials required: --api-key KEY or --user U --password P")
    credential: str | tuple[str, str] = api_key if api_key else (user, password)  # type: ignore[assignment]
    return GrafanaApi.from_url(url, credential=credential, timeout=timeout)


def explain(exc: BaseException, url: str) -> str:
    """One line for any failure talking to Grafana."""
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        what = "rejected the credentials" if status == 401 else "denied the request (the account needs Admin/Editor rights)"
        return f"Grafana at {url} {what}: HTTP {status}"
    if status:
        return f"Grafana at {url} answered HTTP {status}: {getattr(exc, 'message', exc)}"
    name = type(exc).__name__
    if "Timeout" in name:
        return f"Grafana at {url} did not answer in time ({name})"
    if "Connection" in name or isinstance(exc, OSError):
        return f"cannot connect to Grafana at {url} ({name}); is it running and is the URL right?"
    return f"push to Grafana at {url} failed: {name}: {str(exc).splitlines()[0] if str(exc) else ''}"
