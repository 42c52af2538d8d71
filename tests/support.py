"""Helpers for integration tests: isolated settings and real `marketpulse` processes."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from marketpulse.settings import Settings



def isolated_overrides(prefix: str, bootstrap: str, state_dir: Path) -> dict:
    """Settings overrides that give a test its own topics, consumer groups and indices."""
    p = prefix
    return {
        "kafka": {"bootstrap": bootstrap, "worker_group": f"{p}-worker", "es_sink_group": f"{p}-sink",
                  "alerter_group": f"{p}-alerter",
                  "topics": {"raw_news": f"{p}.raw.news", "raw_social": f"{p}.raw.social", "events": f"{p}.events",
                             "deadletter": f"{p}.deadletter", "alerts": f"{p}.alerts",
                             "webhook_deliveries": f"{p}.deliveries", "alerter_state": f"{p}.alerter-state",
                             "partitions": 3}},
        "elasticsearch": {"index_prefix": f"{p}-events", "alerts_index": f"{p}-alerts",
                          "deliveries_index": f"{p}-deliveries"},
        "state_dir": str(state_dir),
        "pseudonym_key": f"{p}-pseudonym-key",  # the worker refuses the public default
    }


def cleanup_prefix(prefix: str, bootstrap: str, es) -> None:
    """Deletes every topic, index and index template a test created under its prefix."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@dataclass
class Isolated:
    """Settings whose topics, groups and indices belong to one test only."""

    settings: Settings
    config: Path
    logs: Path
    procs: list = field(default_factory=list)

    def start(self, *command: str) -> subprocess.Popen:
        """Start `marketpulse <command> --config <this test's config>` as a real process."""
        log = open(self.logs / f"{command[0]}-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "marketpulse.cli", *command, "--config", str(self.config)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill(); proc.wait()
        return proc.returncode

    def log_tail(self, proc: subprocess.Popen, n: int = 40) -> str:
        return "\n".join(self.log_text(proc).splitlines()[-n:])

    def log_text(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")


_SYNCED = re.compile(r"Successfully synced group \S+ with generation (\d+)")
_TP_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*\{([^}]*)\}\s*\|\s*$")


def _partition_set(text: str) -> set[int]:
    """faust's rendering of a partition set, e.g. "0, 2" or "0-2, 5"."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def rebalance_log(log_text: str) -> list[tuple[str, int | None, frozenset]]:
    """A faust worker's own record of its partitions, from its log: ("assigned", generation, {(topic,
    partition)}) and ("revoked", None, {...}) in log order. The worker's log is the ground truth of
    what it held; the broker's group description is a snapshot that is in flux during a rebalance and
    whose faust member metadata other clients cannot always decode."""
    out: list[tuple[str, int | None, frozenset]] = []
    lines = log_text.splitlines()
    generation: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _SYNCED.search(line)
        if m:
            generation = int(m.group(1))
        kind = ("assigned" if "Setting newly assigned partitions" in line
                else "revoked" if "Revoking previously assigned partitions" in line else None)
        if kind:
            tps: set[tuple[str, int]] = set()
            if "for group" not in line:  # a non-empty set is logged as a table, closed by "... for group"
                while i + 1 < len(lines):
                    i += 1
                    row = _TP_ROW.match(lines[i])
                    if row and row.group(1) != "topic":
                        tps.update((row.group(1), p) for p in _partition_set(row.group(2)))
                    if "for group" in lines[i]:
                        break
            out.append((kind, generation if kind == "assigned" else None, frozenset(tps)))
        i += 1
    return out


def current_assignment(log_text: str) -> tuple[int, frozenset] | None:
    """(generation, partitions) the worker holds now by its own log; None before its first assignment
    and between a revocation and the next assignment (a rebalance in progress)."""
    events = rebalance_log(log_text)
    if not events or events[-1][0] != "assigned":
        return None
    return events[-1][1], events[-1][2]


def wait_pipeline_ready(iso: "Isolated", worker: subprocess.Popen, sink: subprocess.Popen | None = None,
                        timeout: float = 240) -> None:
    """Until `worker` holds every raw partition by its own log (model loaded, group joined) and `sink`
    has started consuming. Tests that must act mid-stream start their paced stream only then, so the
    stream is not half over before the pipeline is up on a busy machine."""
    k = iso.settings.kafka
    raw = {(t, p) for t in k.topics.raw() for p in range(k.topics.partitions)}

    def ready() -> bool:
        now = current_assignment(iso.log_text(worker))
        return (now is not None and raw <= now[1]
                and (sink is None or "es sink consuming" in iso.log_text(sink)))

    try:
        wait_until(ready, timeout, 0.5, what="the worker holding every raw partition and the sink consuming")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker:\n{iso.log_tail(worker, 40)}"
                             + (f"\nsink:\n{iso.log_tail(sink, 20)}" if sink is not None else "")) from None


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)




def labeled_from_truth(sample) -> "LabeledEvent":
    """A LabeledEvent built from a generated sample's ground truth (no model needed): for tests of
    what happens after classification (sink, alerter, replay)."""
    from marketpulse.schemas import LabeledEvent

    neg = {"negative": 0.9, "neutral": 0.07, "positive": 0.03}
    pos = {"negative": 0.03, "neutral": 0.07, "positive": 0.9}
    mid = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
    scores = {"negative": neg, "positive": pos}.get(sample.sentiment, mid)
    tickers = [{"symbol": sample.ticker, "relevance": 1.0, "matched": sample.ticker}] if sample.ticker else []
    return LabeledEvent(**sample.event.model_dump(), sentiment=sample.sentiment, sentiment_scores=scores,
                        topic=sample.topic, topic_scores=[{"label": sample.topic, "score": 0.9}], tickers=tickers,
                        duplicate_of=sample.duplicate_of, model_version="ground-truth")


# -- reliability helpers: the local stack's processes, memory, topics, paced producing ------------------


REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_SH = REPO_ROOT / "scripts" / "stack.sh"


def stack_pid(service: str) -> int:
    """Pid of the local stack's `kafka` or `elasticsearch` JVM, from scripts/stack.sh's pid files."""
    state = Path(os.environ.get("MARKETPULSE_STATE_DIR", REPO_ROOT / ".state"))
    pidfile = {"kafka": state / "kafka" / "kafka.pid", "elasticsearch": state / "elasticsearch" / "es.pid"}[service]
    return int(pidfile.read_text().strip())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stack_up(timeout: float = 300) -> None:
    """`scripts/stack.sh up`: starts whatever is not running and waits until both servers answer."""
    subprocess.run([str(STACK_SH), "up"], check=True, timeout=timeout, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextmanager
def paused(pid: int):
    """SIGSTOP a process for the duration of the block; SIGCONT whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def restart_kafka(stop_timeout: float = 60, start_timeout: float = 300) -> float:
    """Stops the local broker (SIGTERM: controlled shutdown), starts it again with scripts/stack.sh and
    waits until it answers. Returns the seconds the broker was unreachable."""
    pid = stack_pid("kafka")
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid), stop_timeout, 0.2, what="the Kafka broker to stop")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, 0.2, what="the Kafka broker to die")
    stack_up(start_timeout)
    return time.monotonic() - t0


def ensure_stack_running(timeout: float = 300) -> None:
    """For `finally` blocks of fault-injection tests: whatever happened, leave the stack as it was."""
    for service in ("kafka", "elasticsearch"):
        try:
            pid = stack_pid(service)
        except (FileNotFoundError, ValueError):
            continue
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGCONT)  # a paused server would otherwise stay paused
            except PermissionError:
                pass
    stack_up(timeout)


def proc_status_kib(pid: int, field: str = "VmRSS") -> int:
    """A /proc/<pid>/status memory field (VmRSS: resident now, VmHWM: peak resident) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every `interval` seconds: [(monotonic time, KiB)]."""

    def __init__(self, pid: int, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            try:
                self.samples.append((time.monotonic(), proc_status_kib(self.pid)))
            except (FileNotFoundError, ProcessLookupError, KeyError):
                return
            self._stop_evt.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._stop_evt.set()
        self.join(5)
        return self.samples

    def between(self, t0: float, t1: float) -> list[int]:
        return [kib for t, kib in self.samples if t0 <= t <= t1]


class PacedProducer(threading.Thread):
    """Sends (topic, key, value) records at `rate` per second from a background thread, and keeps
    going through broker outages: a record whose delivery failed is sent again later. Re-sending may
    duplicate a record in Kafka; the pipeline must absorb that (deterministic Elasticsearch _id)."""

    def __init__(self, bootstrap: str, records: list, rate: float, tick_s: float = 0.1):
        super().__init__(daemon=True)
        self.bootstrap, self.records, self.rate, self.tick_s = bootstrap, records, rate, tick_s
        self.acked = 0
        self.resent = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: BaseException | None = None
        self._stop_evt = threading.Event()

    def run(self) -> None:
        from kafka import KafkaProducer

        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5,
                                     reconnect_backoff_max_ms=2000, max_block_ms=10_000)
            self.started_at = t0 = time.monotonic()
            todo = list(self.records)
            retry: list = []
            i = 0
            while (i < len(todo) or retry) and not self._stop_evt.is_set():
                due = min(len(todo), int((time.monotonic() - t0) * self.rate) + 1)
                chunk, retry = retry + todo[i:due], []
                i = due
                sent = []
                for rec in chunk:
                    try:
                        sent.append((rec, producer.send(rec[0], key=rec[1], value=rec[2])))
                    except Exception:  # metadata unavailable while the broker is down
                        retry.append(rec)
                try:
                    producer.flush(timeout=30)
                except Exception:
                    pass
                for rec, fut in sent:
                    if fut.succeeded():
                        self.acked += 1
                    else:
                        retry.append(rec)
                self.resent += len(retry)
                if retry:
                    time.sleep(0.5)
                else:
                    time.sleep(max(0.0, t0 + (i + 1) / self.rate - time.monotonic()) if i < len(todo) else 0)
            producer.close(timeout=10)
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def stop(self) -> None:
        self._stop_evt.set()

    @property
    def achieved_rate(self) -> float:
        end = self.finished_at or time.monotonic()
        return self.acked / max(1e-9, end - (self.started_at or end))


def es_ids(es, alias: str) -> list[str]:
    """Every document's `id` behind `alias` (duplicates kept, so a caller can count them)."""
    from elasticsearch.helpers import scan

    if not es.indices.exists_alias(name=alias):
        return []
    es.indices.refresh(index=alias)
    return [h["_source"]["id"] for h in scan(es, index=alias, query={"query": {"match_all": {}}},
                                              _source=["id"], size=2000)]


def es_doc_count(es, alias: str) -> int:
    if not es.indices.exists_alias(name=alias):
        return 0
    es.indices.refresh(index=alias)
    return es.count(index=alias)["count"]


def topic_end_total(bootstrap: str, topic: str) -> int:
    """Records ever written to `topic` (sum of its partitions' end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        return sum(c.end_offsets(tps).values()) if tps else 0
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list:
    """Every record currently in `topic`, reading each partition up to its end offset."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20,
                      fetch_max_bytes=16 << 20)
    try:
        tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or set())]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout_s
        while any(c.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for recs in c.poll(timeout_ms=1000).values():
                out += recs
        return out
    finally:
        c.close()


def generated_records(settings: Settings, seed: int, n: int, malformed_fraction: float = 0.0,
                      id_prefix: str = "") -> tuple[list, set[str], int]:
    """`n` generated raw records as (topic, key, value) for PacedProducer, the ids of the valid ones
    (what must end up in Elasticsearch) and how many are malformed (what must be dead-lettered).
    `id_prefix` keeps ids of separate batches from the same seed apart."""
    import json as _json

    from stream.generate import Generator

    topics = {"news": settings.kafka.topics.raw_news, "social": settings.kafka.topics.raw_social}
    gen = Generator(seed=seed, rate_per_s=100.0, duration_s=n / 100.0 * 1.2 + 10,
                    malformed_fraction=malformed_fraction)
    records, valid, bad = [], set(), 0
    for rec in gen.raw_records():
        if len(records) == n:
            break
        key, value = rec.key, rec.value
        if id_prefix and rec.malformed is None:
            obj = _json.loads(value)
            obj["id"] = id_prefix + obj["id"]
            key, value = obj["id"].encode(), _json.dumps(obj).encode()
        if rec.malformed is None:
            if key.decode() in valid:
                continue  # the generator's ids are content hashes: keep the expectation exact
            valid.add(key.decode())
        else:
            bad += 1
        records.append((topics[rec.source], key, value))
    return records, valid, bad


# -- the ES sink on the real stack: labeled events without a model, committed offsets, a fault proxy --



def labeled_records(settings: Settings, seed: int, n: int, id_prefix: str = "",
                    start: datetime | None = None) -> tuple[list, set[str]]:
    """`n` labeled events (ground-truth labels, no model) as (topic, key, value) for PacedProducer on
    the events topic, and their ids. All are published on one UTC day (today, from 00:01 unless
    `start` says otherwise), so they land in one daily index."""
    from marketpulse import wire
    from stream.generate import Generator

    start = start or datetime.now(timezone.utc).replace(hour=0, minute=1, second=0, microsecond=0)
    gen = Generator(seed=seed, rate_per_s=100.0, duration_s=n / 100.0 * 1.2 + 10, start=start)
    records, ids = [], set()
    for smp in gen.samples():
        if len(records) == n:
            break
        ev = labeled_from_truth(smp)
        ev = ev.model_copy(update={"id": id_prefix + ev.id})
        if ev.id in ids:
            continue
        ids.add(ev.id)
        out = wire.encode_labeled(ev, settings.kafka.topics.events)
        records.append((out.topic, out.key, out.value))
    return records, ids


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Offsets `group` has committed on `topic`, summed over its partitions (0 before any commit)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return sum(max(0, om.offset) for tp, om in offsets.items() if tp.topic == topic)


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "content-length", "host"}


@dataclass
class BulkCall:
    """One `_bulk` request seen by EsFaultProxy: its operations as (action, raw NDJSON lines)."""

    number: int  # 1 for the first bulk request the proxy saw, and so on
    ops: list[tuple[dict, bytes]]
    forward: "object"  # forward(positions=None) -> Elasticsearch's answer for those ops (all by default)


class EsFaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the real Elasticsearch, for faults the real server cannot
    be made to produce on demand. Every request is forwarded unchanged, except that a `_bulk`
    request goes through ``bulk_hook(call)`` when one is set: the hook forwards what it wants
    (``call.forward(positions)``) and returns the answer the client gets, a bulk answer dict or
    (HTTP status, body dict). ``reject`` builds the usual hook answer: some items refused by the
    proxy (never sent to Elasticsearch), the others forwarded, the items in request order."""

    def __init__(self, upstream: str = "127.0.0.1:9200"):
        self.upstream = upstream
        self.bulk_hook = None
        self.bulk_requests = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like Elasticsearch

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                try:
                    proxy._handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the client died (kill -9) meanwhile
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "EsFaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- forwarding -------------------------------------------------------------------------------
    def _upstream(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        host, _, port = self.upstream.rpartition(":")
        conn = HTTPConnection(host, int(port), timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _reply(self, h: BaseHTTPRequestHandler, status: int, headers: list, body: bytes) -> None:
        h.send_response(status)
        for k, v in headers:
            if k.lower() not in _HOP_BY_HOP:
                h.send_header(k, v)
        if h.command == "HEAD":
            length = next((v for k, v in headers if k.lower() == "content-length"), "0")
            h.send_header("Content-Length", length)
            h.end_headers()
            return
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP}
        is_bulk = h.command in ("POST", "PUT") and urlsplit(h.path).path.rstrip("/").endswith("_bulk")
        if not is_bulk or self.bulk_hook is None:
            self._reply(h, *self._upstream(h.command, h.path, headers, body))
            return
        lines = [line for line in body.split(b"\n") if line.strip()]
        ops: list[tuple[dict, bytes]] = []
        i = 0
        while i < len(lines):
            action = json.loads(lines[i])
            n = 1 if next(iter(action)) == "delete" else 2
            ops.append((action, b"\n".join(lines[i:i + n]) + b"\n"))
            i += n
        answer_headers: list = [("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8"),
                                ("X-Elastic-Product", "Elasticsearch")]

        def forward(positions=None) -> dict:
            chosen = [ops[j] for j in (range(len(ops)) if positions is None else positions)]
            if not chosen:
                return {"took": 0, "errors": False, "items": []}
            status, hdrs, data = self._upstream(h.command, h.path, headers, b"".join(raw for _, raw in chosen))
            if status != 200:
                raise AssertionError(f"Elasticsearch answered the forwarded bulk with {status}: {data[:300]!r}")
            answer_headers[:] = [(k, v) for k, v in hdrs if k.lower() not in _HOP_BY_HOP]
            return json.loads(data)

        with self._lock:
            self.bulk_requests += 1
            number = self.bulk_requests
        out = self.bulk_hook(BulkCall(number, ops, forward))
        status, doc = out if isinstance(out, tuple) else (200, out)
        self._reply(h, status, answer_headers, json.dumps(doc).encode())

    @staticmethod
    def reject(call: BulkCall, positions: set[int], status: int, error: dict) -> dict:
        """The answer when the items at `positions` are refused with `status`/`error` and not indexed
        (as Elasticsearch does: a refused item is not written) and the others are forwarded."""
        kept = [j for j in range(len(call.ops)) if j not in positions]
        answer = call.forward(kept)
        forwarded = iter(answer["items"])
        items = []
        for j, (action, _) in enumerate(call.ops):
            if j in positions:
                kind, meta = next(iter(action.items()))
                items.append({kind: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": status,
                                     "error": error}})
            else:
                items.append(next(forwarded))
        return {"took": answer["took"], "errors": True, "items": items}


# -- a topic that refuses writes, for real -------------------------------------------------------------
# min.insync.replicas=2 does not do it on a single broker: Kafka 3.9 caps a partition's effective
# min ISR at its replica count (Partition.effectiveMinIsr), so acks=all writes still succeed. A
# max.message.bytes below the size of any record does: the broker answers every produce request for
# the topic with MESSAGE_TOO_LARGE and appends nothing, until the override is removed.
REFUSING_MAX_MESSAGE_BYTES = 64


def alter_topic_config(bootstrap: str, topic: str, configs: dict) -> None:
    """Sets dynamic configs of `topic` (a value of None removes the override: back to the broker's
    default) and waits until the broker reports the new values."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        ops = {k: ("DELETE", None) if v is None else str(v) for k, v in configs.items()}
        result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=ops)])
        assert result.get("topic", {}).get(topic) == "OK", f"altering {topic}: {result}"

        def applied() -> bool:
            now = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
            return all((now.get(k) or {}).get("value") == (None if v is None else str(v)) for k, v in configs.items())

        wait_until(applied, 30, 0.2, what=f"{topic}'s config {configs}")
    finally:
        admin.close()
    time.sleep(1.0)  # the broker's log config follows its metadata image a moment after describe shows it


def refuse_writes(bootstrap: str, topic: str) -> None:
    alter_topic_config(bootstrap, topic, {"max.message.bytes": REFUSING_MAX_MESSAGE_BYTES})


def accept_writes(bootstrap: str, topic: str) -> None:
    alter_topic_config(bootstrap, topic, {"max.message.bytes": None})


def committed_offsets(bootstrap: str, group: str, tps) -> dict:
    """The group's committed offset per (topic, partition); 0 where nothing was committed yet."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {(t, p): c.committed(TopicPartition(t, p)) or 0 for t, p in tps}
    finally:
        c.close()


def deadletter_positions(bootstrap: str, topic: str) -> list[tuple[tuple[str, int, int], str]]:
    """((source topic, partition, offset), reason) of every dead letter in `topic`, duplicates kept."""
    import json as _json

    out = []
    for m in read_topic(bootstrap, topic):
        d = _json.loads(m.value)
        out.append(((d["source"]["topic"], d["source"]["partition"], d["source"]["offset"]), d["reason"]))
    return out
