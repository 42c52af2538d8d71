"""The dashboard JSON files are valid Grafana 11 dashboards wired to the provisioned datasources.

Schema check: each file is decoded with grafana-foundation-sdk (Grafana's generated types for 11.x)
and encoded back; a key the types do not know is dropped on the way, so anything lost in the
round trip is a typo or a field Grafana would ignore. The SDK does not enforce types or enums, so
the structural checks below cover ids, grid, datasource references and expression inputs.
"""
from __future__ import annotations

import json

import pytest

from dashboards.push import PROMETHEUS_UID, dashboard_files, load_dashboards, provisioned_datasources

EXPECTED = {"marketpulse-market": "Market sentiment", "marketpulse-ticker": "Ticker drill-down",
            "marketpulse-pipeline": "Pipeline health"}
PANEL_TYPES = {"timeseries", "table", "stat", "barchart", "bargauge", "logs", "text", "row", "heatmap"}
# Fields of the Elasticsearch annotation that Grafana reads but the SDK's generic AnnotationQuery lacks.
ES_ANNOTATION_FIELDS = {"timeField", "timeEndField", "textField", "tagsField"}
MIXED = {"type": "datasource", "uid": "-- Mixed --"}
EXPRESSION = {"type": "__expr__", "uid": "__expr__"}


def _panels(dashboard: dict) -> list[dict]:
    return dashboard["panels"]


def test_the_three_dashboards_exist_with_stable_uids_and_titles():
    dashboards = load_dashboards()
    assert {uid: d["title"] for uid, d in dashboards.items()} == EXPECTED
    assert len(dashboard_files()) == 3  # Grafana provisions every *.json in dashboards/


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_dashboard_targets_grafana_11_json_model(uid):
    d = load_dashboards()[uid]
    assert 39 <= d["schemaVersion"] <= 41
    assert d.get("id") is None  # Grafana assigns numeric ids; a committed one collides across instances
    assert "marketpulse" in d["tags"]
    ids = [p["id"] for p in _panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in _panels(d):
        assert p["type"] in PANEL_TYPES, p["title"]
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_every_query_uses_a_provisioned_datasource(uid):
    known = {(ds["type"], ds["uid"]) for ds in provisioned_datasources()}
    d = load_dashboards()[uid]
    for p in _panels(d):
        panel_ds = p["datasource"]
        assert panel_ds == MIXED or (panel_ds["type"], panel_ds["uid"]) in known, p["title"]
        for t in p["targets"]:
            ds = t["datasource"]
            if ds == EXPRESSION:
                # An expression may only read queries of the same panel.
                inputs = {w.lstrip("$") for w in t["expression"].split() if w.startswith("$")}
                assert inputs and inputs <= {o["refId"] for o in p["targets"] if o is not t}, p["title"]
                assert panel_ds == MIXED, p["title"]
            else:
                assert (ds["type"], ds["uid"]) in known, f"{p['title']}: unknown datasource {ds}"
                assert panel_ds in (MIXED, ds), f"{p['title']}: target datasource differs from the panel's"
    for ann in d["annotations"]["list"]:
        if not ann.get("builtIn"):
            assert (ann["datasource"]["type"], ann["datasource"]["uid"]) in known
    for var in d["templating"]["list"]:
        assert (var["datasource"]["type"], var["datasource"]["uid"]) in known


def test_provisioning_declares_events_alerts_and_prometheus_datasources():
    by_uid = {ds["uid"]: ds for ds in provisioned_datasources()}
    assert by_uid["marketpulse-es-events"]["jsonData"] == {"index": "marketpulse-events", "timeField": "published_at"}
    assert by_uid["marketpulse-es-alerts"]["jsonData"]["timeField"] == "window_start"
    assert by_uid[PROMETHEUS_UID]["url"] == "http://prometheus:9090"


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_dashboard_round_trips_through_grafana_foundation_sdk_types(uid):
    sdk = pytest.importorskip("grafana_foundation_sdk", reason="grafana-foundation-sdk not installed")
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.cog.runtime import dataquery_from_json
    from grafana_foundation_sdk.models import expr
    from grafana_foundation_sdk.models.dashboard import Dashboard

    assert sdk  # imported for the skip
    register_default_plugins()
    original = load_dashboards()[uid]
    back = json.loads(json.dumps(Dashboard.from_json(original), cls=JSONEncoder))

    def lost(a: dict, b: dict, path: str, ignore: set[str] = frozenset()) -> list[str]:
        return [f"{path}.{k}" for k in a if k not in b and k not in ignore]

    problems = lost(original, back, uid)
    for p, q in zip(_panels(original), back["panels"], strict=True):
        where = f"{uid}/{p['title']}"
        problems += lost(p, q, where)
        problems += lost(p.get("options", {}), q.get("options", {}), where + ".options")
        problems += lost(p["fieldConfig"]["defaults"].get("custom", {}),
                         q["fieldConfig"]["defaults"].get("custom", {}), where + ".custom")
        for t in p["targets"]:
            # In a mixed panel the SDK decodes by the panel's datasource; decode each query by its own.
            if t["datasource"]["type"] == "__expr__":
                decoded = expr.TypeMath.from_json(t)
            else:
                decoded = dataquery_from_json(t, t["datasource"]["type"])
                assert type(decoded).__module__.endswith(t["datasource"]["type"]), where
            problems += lost(t, decoded.to_json(), f"{where}.{t['refId']}")
    for a, b in zip(original["annotations"]["list"], back["annotations"]["list"], strict=True):
        problems += lost(a, b, f"{uid}/annotation {a['name']}", ignore=ES_ANNOTATION_FIELDS)
    for a, b in zip(original["templating"]["list"], back["templating"]["list"], strict=True):
        problems += lost(a, b, f"{uid}/${a['name']}", ignore={"definition"})
    assert problems == []
