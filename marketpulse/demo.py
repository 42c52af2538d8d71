"""`marketpulse demo`: the main job on the local stack, end to end, then a summary read back from ES.

Starts a worker, the Elasticsearch sink and the alerter as real processes, backfills some quiet
history (so the alerter has a baseline), streams about a minute of live synthetic news and posts with
one scripted negative burst, waits until Elasticsearch has every valid record, prints what it holds,
and stops the processes it started.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketpulse.settings import Settings

console = Console()


def _start(command: list[str], log_dir: Path, config: Path | None, env: dict[str, str]) -> subprocess.Popen:
    log = open(log_dir / f"{command[0]}.log", "ab")
    args = [sys.executable, "-m", "marketpulse.cli", *command] + (["--config", str(config)] if config else [])
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **env})


def demo_secrets(s: Settings) -> dict[str, str]:
    """Random keys for the demo's processes where the settings still hold the public defaults,
    made once per state folder (so pseudonyms stay stable across demo runs) and kept there."""
    wanted = s.insecure_defaults(worker=True, alerter=True)
    if not wanted or s.allow_insecure_defaults:
        return {}
    path = s.state_dir / "demo-secrets.json"
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for name in ("pseudonym_key", "alerts.webhook_secret"):
        saved.setdefault(name, secrets.token_hex(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved))
    path.chmod(0o600)
    return {f"MARKETPULSE_{name.upper().replace('.', '__')}": saved[name] for name in wanted}


def _stop(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        console.print(f"stopped {name} (exit {proc.returncode})")


def _count(es, alias: str, since: datetime) -> int:
    if not es.indices.exists_alias(name=alias):
        return 0
    es.indices.refresh(index=alias)
    return es.count(index=alias, query={"range": {"published_at": {"gte": since.isoformat()}}})["count"]


def _alert_for(es, index: str, key: str, since: datetime) -> bool:
    if not es.indices.exists(index=index):
        return False
    es.indices.refresh(index=index)
    q = {"bool": {"filter": [{"term": {"key": key}}, {"range": {"window_start": {"gte": since.isoformat()}}}]}}
    return es.count(index=index, query=q)["count"] > 0


def run_demo(settings: Settings, config: Path | None, live_s: float, history_s: float, rate: float,
             burst: str, seed: int) -> int:
    from elasticsearch import Elasticsearch

    from stream.generate.runner import run_generator
    from stream.generate.scenarios import parse_scenario
    from marketpulse.kafka_topics import ensure_topics

    s = settings
    es = Elasticsearch(**s.elasticsearch.client_kwargs())
    ensure_topics(s.kafka)
    log_dir = s.state_dir / "demo-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.now(timezone.utc).replace(microsecond=0)
    since = start - timedelta(seconds=history_s)
    # The demo's alerter gets a group of its own, starting at this run's history, so earlier runs'
    # events (and the live alerter's saved state) stay out of this run's baseline.
    alerter = ["alerter", "--group", f"{s.kafka.alerter_group}-demo-{start:%Y%m%d%H%M%S}",
               "--from-time", since.isoformat()]
    env = demo_secrets(s)
    procs = {cmd[0]: _start(cmd, log_dir, config, env) for cmd in (["worker"], ["sink"], alerter)}
    console.print(f"started worker, ES sink and alerter (logs in {log_dir})")
    try:
        console.print(f"backfilling {history_s / 60:.0f} min of quiet history at {rate}/s …")
        hist = run_generator(s.kafka, rate=rate, duration=history_s, seed=seed, scenarios=[],
                             malformed_fraction=0.01, realtime=False, start=since)
        console.print(f"streaming {live_s:.0f} s live at {rate}/s with scenario {burst} …")
        live = run_generator(s.kafka, rate=rate, duration=live_s, seed=seed + 1, scenarios=[burst],
                             malformed_fraction=0.01, realtime=True, start=start)
        valid = hist["sent"] - hist["malformed"] + live["sent"] - live["malformed"]
        console.print(f"sent {hist['sent'] + live['sent']} records ({hist['malformed'] + live['malformed']} "
                      f"malformed, to the dead-letter topic); waiting for {valid} documents in Elasticsearch …")
        deadline = time.monotonic() + 300
        alias = s.elasticsearch.index_prefix
        while (n := _count(es, alias, since)) < valid and time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited ({proc.returncode}); see {log_dir / (name + '.log')}")
                    return 1
            time.sleep(2)
        console.print(f"{n} of {valid} documents indexed")
        ticker = parse_scenario(burst).ticker
        console.print(f"waiting for the alerter to close the burst's buckets (ticker:{ticker}) …")
        deadline = time.monotonic() + s.alerts.bucket_s + s.alerts.allowed_lateness_s + 60
        while not _alert_for(es, s.elasticsearch.alerts_index, f"ticker:{ticker}", since) \
                and time.monotonic() < deadline:
            time.sleep(2)
        print_summary(es, s, since)
        return 0 if n >= valid else 1
    finally:
        _stop(procs)


def print_summary(es, s: Settings, since: datetime) -> None:
    alias = s.elasticsearch.index_prefix
    rng = {"range": {"published_at": {"gte": since.isoformat()}}}
    res = es.search(index=alias, size=0, query=rng, aggs={
        "sentiment": {"terms": {"field": "sentiment"}},
        "topic": {"terms": {"field": "topic", "size": 20},
                  "aggs": {"neg": {"filter": {"term": {"sentiment": "negative"}}}}},
        "tickers": {"nested": {"path": "tickers"}, "aggs": {"sym": {"terms": {"field": "tickers.symbol", "size": 200},
                    "aggs": {"back": {"reverse_nested": {}, "aggs": {
                        "neg": {"filter": {"term": {"sentiment": "negative"}}}}}}}}},
    })
    aggs = res["aggregations"]
    t = Table(title=f"events since {since:%H:%M} UTC: {res['hits']['total']['value']}")
    t.add_column("sentiment"); t.add_column("events", justify="right")
    for b in aggs["sentiment"]["buckets"]:
        t.add_row(b["key"], str(b["doc_count"]))
    console.print(t)
    t = Table(title="topics")
    t.add_column("topic"); t.add_column("events", justify="right"); t.add_column("negative share", justify="right")
    for b in aggs["topic"]["buckets"]:
        t.add_row(b["key"], str(b["doc_count"]), f"{b['neg']['doc_count'] / b['doc_count']:.0%}")
    console.print(t)
    rows = [(b["key"], b["back"]["doc_count"], b["back"]["neg"]["doc_count"]) for b in aggs["tickers"]["sym"]["buckets"]]
    rows = sorted((r for r in rows if r[1] >= 5), key=lambda r: (-r[2] / r[1], -r[1]))[:10]
    t = Table(title="most negative tickers (>= 5 events)")
    t.add_column("ticker"); t.add_column("events", justify="right"); t.add_column("negative", justify="right")
    for sym, n, neg in rows:
        t.add_row(sym, str(n), f"{neg} ({neg / n:.0%})")
    console.print(t)
    alerts_index = s.elasticsearch.alerts_index
    if es.indices.exists(index=alerts_index):
        es.indices.refresh(index=alerts_index)
        hits = es.search(index=alerts_index, size=50, sort=[{"window_start": "asc"}],
                         query={"range": {"window_start": {"gte": since.isoformat()}}})["hits"]["hits"]
    else:
        hits = []
    t = Table(title=f"alerts fired: {len(hits)}")
    for col in ("window", "key", "severity", "observed", "expected", "score"):
        t.add_column(col)
    for h in hits:
        a = h["_source"]
        t.add_row(a["window_start"][11:16], a["key"], a["severity"], f"{a['observed']:.1f}",
                  f"{a['expected']:.1f}", f"{a['score']:.1f}")
    console.print(t)
    url = s.elasticsearch.url
    # Plain print: commands must stay on one line to be copied.
    print(f"""
Try it yourself:
  curl -s '{url}/{alias}/_search?q=sentiment:negative&size=3&pretty'
  curl -s '{url}/{alias}/_count?pretty'
  curl -s -H 'Content-Type: application/json' '{url}/{alias}/_search?size=0&pretty' -d '{{"aggs":{{"t":{{"terms":{{"field":"ticker_symbols"}}}}}}}}'
  curl -s '{url}/{s.elasticsearch.alerts_index}/_search?pretty'
Dashboards: with Docker, `docker compose up -d grafana` serves the dashboards in dashboards/
on http://localhost:3000 (admin/admin); or push them to your Grafana:
  .venv/bin/marketpulse dashboards push --url URL --api-key KEY
Stack stays up: `make down` stops Kafka and Elasticsearch.""")
