"""The pipeline-health dashboard queries exactly the metrics the processes export (marketpulse/metrics.py)."""
from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

import marketpulse.metrics
from dashboards.push import load_dashboards

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> dict[str, str]:
    """Series names as prometheus_client exposes them -> the metric's base name."""
    names = {}
    for obj in vars(marketpulse.metrics).values():
        if isinstance(obj, MetricWrapperBase):
            for suffix in SUFFIXES[obj._type]:
                names[obj._name + suffix] = obj._name
    return names


def promql(uid: str) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in load_dashboards()[uid]["panels"] for t in p["targets"]
            if t["datasource"]["type"] == "prometheus"]


def test_every_promql_expression_references_only_exported_series():
    series = exported()
    for title, expr in promql("marketpulse-pipeline"):
        used = set(re.findall(r"\bmarketpulse_[a-z0-9_]+", expr))
        assert used, f"{title}: {expr}"
        assert used <= set(series), f"{title}: unknown series {used - set(series)}"


def test_histograms_are_read_as_quantiles_of_bucket_rates():
    for title, expr in promql("marketpulse-pipeline"):
        if "_bucket" in expr:
            assert re.search(r"histogram_quantile\(0\.\d+, sum by \(le\) \(rate\(marketpulse_\w+_bucket\[", expr), title


def test_every_exported_metric_has_a_panel():
    series = exported()
    used = {series[m] for _, e in promql("marketpulse-pipeline") for m in re.findall(r"\bmarketpulse_[a-z0-9_]+", e)}
    assert used == set(series.values())


def test_labels_in_legends_and_groupings_exist_on_the_metric():
    labels = {obj._name: set(obj._labelnames) | {"le"} for obj in vars(marketpulse.metrics).values()
              if isinstance(obj, MetricWrapperBase)}
    series = exported()
    for title, expr in promql("marketpulse-pipeline"):
        metric = series[re.findall(r"\bmarketpulse_[a-z0-9_]+", expr)[0]]
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= labels[metric], f"{title}: {expr}"
