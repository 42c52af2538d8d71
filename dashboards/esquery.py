"""Run a Grafana Elasticsearch panel query without Grafana.

Translates the subset of Grafana's Elasticsearch query model that the marketpulse dashboards use
(Lucene query string; bucket aggs date_histogram / terms / filters; metrics count, avg, sum, min,
max, cardinality; raw_data) into query DSL the way Grafana's backend builds it: a bool filter of
the time range plus `query_string`, bucket aggs nested in order, metrics in the innermost bucket.
Used by the tests (and `marketpulse dashboards check`) to prove every panel returns data.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

METRIC_TYPES = {"count", "avg", "sum", "min", "max", "cardinality", "raw_data", "raw_document", "logs"}
BUCKET_TYPES = {"date_histogram", "terms", "filters"}
_NICE_INTERVALS = [(1, "1s"), (5, "5s"), (10, "10s"), (30, "30s"), (60, "1m"), (300, "5m"), (600, "10m"),
                   (1800, "30m"), (3600, "1h"), (10800, "3h"), (21600, "6h"), (43200, "12h"), (86400, "1d")]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def millis(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)

    def auto_interval(self, max_points: int = 200) -> str:
        """A round interval giving at most ~max_points buckets (Grafana's $__interval, roughly)."""
        seconds = (self.end - self.start).total_seconds() / max_points
        for limit, name in _NICE_INTERVALS:
            if seconds <= limit:
                return name
        return "1d"


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Grafana's $var, ${var} and [[var]] forms; unknown variables are left alone (and will fail loudly)."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return variables.get(name, m.group(0))
    return re.sub(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)", sub, text)


def _range_filter(time_field: str, tr: TimeRange) -> dict:
    lo, hi = tr.millis()
    return {"range": {time_field: {"gte": lo, "lte": hi, "format": "epoch_millis"}}}


def _lucene(query: str | None, variables: dict[str, str]) -> dict | None:
    q = interpolate((query or "").strip(), variables)
    if q in ("", "*"):
        return None  # Grafana sends no query_string for an empty query
    return {"query_string": {"query": q, "analyze_wildcard": True}}


def _bool(time_field: str, tr: TimeRange, query: str | None, variables: dict[str, str]) -> dict:
    filters = [_range_filter(time_field, tr)]
    lucene = _lucene(query, variables)
    if lucene:
        filters.append(lucene)
    return {"bool": {"filter": filters}}


def _bucket_agg(agg: dict, time_field: str, tr: TimeRange, variables: dict[str, str]) -> dict:
    kind, settings = agg["type"], agg.get("settings") or {}
    if kind not in BUCKET_TYPES:
        raise ValueError(f"bucket aggregation {kind!r} is not supported by this translator")
    if kind == "date_histogram":
        interval = settings.get("interval", "auto")
        interval = tr.auto_interval() if interval in ("auto", "$__interval", "") else interpolate(interval, variables)
        lo, hi = tr.millis()
        return {"date_histogram": {"field": agg.get("field") or time_field, "fixed_interval": interval,
                                   "min_doc_count": int(settings.get("min_doc_count", 0)),
                                   "extended_bounds": {"min": lo, "max": hi}, "format": "epoch_millis"}}
    if kind == "terms":
        order_by = settings.get("orderBy", "_count")
        order_by = {"_term": "_key"}.get(order_by, order_by)
        return {"terms": {"field": agg["field"], "size": int(settings.get("size", 10)) or 500,
                          "order": {order_by: settings.get("order", "desc")},
                          "min_doc_count": int(settings.get("min_doc_count", 1))}}
    filters = {}
    for f in settings.get("filters") or [{"query": "*", "label": ""}]:
        label = f.get("label") or f.get("query") or "*"
        filters[label] = {"query_string": {"query": interpolate(f.get("query") or "*", variables),
                                           "analyze_wildcard": True}}
    return {"filters": {"filters": filters}}


def _metric_aggs(metrics: list[dict]) -> dict:
    aggs = {}
    for m in metrics:
        kind = m["type"]
        if kind not in METRIC_TYPES:
            raise ValueError(f"metric {kind!r} is not supported by this translator")
        if kind == "count":
            continue  # doc_count of the enclosing bucket
        aggs[str(m["id"])] = {kind: {"field": m["field"]}}
    return aggs


def is_raw(target: dict) -> bool:
    return any(m["type"] in ("raw_data", "raw_document", "logs") for m in target.get("metrics") or [])


def to_search(target: dict, tr: TimeRange, variables: dict[str, str] | None = None,
              time_field: str | None = None) -> dict:
    """Keyword arguments for `Elasticsearch.search` (minus the index) for one Grafana ES target."""
    variables = variables or {}
    time_field = target.get("timeField") or time_field
    if not time_field:
        raise ValueError(f"target {target.get('refId')} has no timeField and none was given")
    metrics = target.get("metrics") or [{"id": "1", "type": "count"}]
    body: dict[str, Any] = {"query": _bool(time_field, tr, target.get("query"), variables)}
    if is_raw(target):
        size = int((metrics[0].get("settings") or {}).get("size", 500))
        body.update(size=size, sort=[{time_field: {"order": "desc", "unmapped_type": "boolean"}}, {"_doc": "desc"}])
        return body
    body["size"] = 0
    inner: dict = {}
    root = inner
    for agg in target.get("bucketAggs") or []:
        node = _bucket_agg(agg, time_field, tr, variables)
        inner[str(agg["id"])] = node
        inner = node.setdefault("aggs", {})
    inner.update(_metric_aggs(metrics))
    if root:
        body["aggs"] = root
    return body


def variable_search(variable: dict, tr: TimeRange, time_field: str) -> dict:
    """Search for a query variable of the ES datasource: {"find": "terms", "field": ..., "size": ...}."""
    spec = json.loads(variable["query"]) if isinstance(variable["query"], str) else variable["query"]
    if spec.get("find") != "terms":
        raise ValueError(f"variable {variable['name']}: only find=terms is supported")
    return {"size": 0, "query": _bool(time_field, tr, spec.get("query"), {}),
            "aggs": {"1": {"terms": {"field": spec["field"], "size": int(spec.get("size", 500)),
                                     "order": {"_key": "asc"}}}}}


def rows(response: dict, target: dict) -> int:
    """Data points in a response: hits for raw queries, else innermost buckets holding documents
    and a value for every metric (a misspelled metric field yields null values, so no rows)."""
    if is_raw(target):
        return len(response["hits"]["hits"])
    metric_ids = [str(m["id"]) for m in target.get("metrics") or [] if m["type"] != "count"]
    aggs = response.get("aggregations")
    if not aggs:
        return int(response["hits"]["total"]["value"] > 0)

    def walk(node: dict) -> int:
        subs = [v for v in node.values() if isinstance(v, dict) and "buckets" in v]
        if not subs:
            filled = all((node.get(m) or {}).get("value") is not None for m in metric_ids)
            return int(node.get("doc_count", 1) > 0 and filled)
        n = 0
        for sub in subs:
            buckets = sub["buckets"]
            buckets = buckets.values() if isinstance(buckets, dict) else buckets
            n += sum(walk(b) for b in buckets)
        return n

    return walk(aggs)


def es_targets(dashboard: dict) -> Iterator[tuple[str, dict]]:
    """(label, target) for every Elasticsearch query in a dashboard's panels."""
    for panel in dashboard.get("panels") or []:
        for target in panel.get("targets") or []:
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == "elasticsearch":
                yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target


def es_annotations(dashboard: dict) -> Iterator[tuple[str, dict]]:
    """Annotation queries of the ES datasources, as targets (raw hits in the time field)."""
    for ann in (dashboard.get("annotations") or {}).get("list") or []:
        ds = ann.get("datasource") or {}
        if ds.get("type") == "elasticsearch":
            # Grafana reads the legacy top-level `query` first, then `target.query` (where its editor writes).
            query = ann.get("query", (ann.get("target") or {}).get("query", "*"))
            limit = (ann.get("target") or {}).get("limit", 100)
            target = {"refId": "annotation", "datasource": ds, "query": query, "timeField": ann["timeField"],
                      "metrics": [{"id": "1", "type": "raw_data", "settings": {"size": str(limit)}}]}
            yield f"{dashboard['uid']} / annotation {ann['name']}", target


def default_range(hours: float = 24) -> TimeRange:
    from datetime import timezone

    end = datetime.now(timezone.utc)
    return TimeRange(end - timedelta(hours=hours), end)


def check(es: Any, dashboards: dict[str, dict], indices: dict[str, str], time_fields: dict[str, str],
          tr: TimeRange) -> list[tuple[str, int]]:
    """(label, rows) for every ES panel query and annotation; variables take their first value."""
    results = []
    for dashboard in dashboards.values():
        variables = {}
        for var in (dashboard.get("templating") or {}).get("list") or []:
            if var.get("type") == "query" and (var.get("datasource") or {}).get("type") == "elasticsearch":
                uid = var["datasource"]["uid"]
                body = variable_search(var, tr, time_fields[uid])
                buckets = es.search(index=indices[uid], **body)["aggregations"]["1"]["buckets"]
                results.append((f"{dashboard['uid']} / ${var['name']}", len(buckets)))
                if buckets:
                    variables[var["name"]] = str(buckets[0]["key"])
        for label, target in [*es_targets(dashboard), *es_annotations(dashboard)]:
            uid = target["datasource"]["uid"]
            body = to_search(target, tr, variables, time_fields[uid])
            results.append((label, rows(es.search(index=indices[uid], **body), target)))
    return results
