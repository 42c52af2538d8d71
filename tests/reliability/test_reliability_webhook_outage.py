"""A webhook receiver that is down when an alert fires: the live alerter retries with growing backoff,
logs every attempt, and the alert is delivered exactly once as soon as the receiver is back."""
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from kafka import KafkaProducer

from consumers.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from stream.generate import Generator
from marketpulse.kafka_topics import ensure_topics
from tests.support import labeled_from_truth, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SECRET = "outage-secret"
MIN_FAILED_ATTEMPTS = 3   # the receiver stays down at least this many attempts...
MIN_OUTAGE_S = 8.0        # ...and at least this long after the first one


class HookReceiver:
    """A real HTTP endpoint on a fixed port, so it can come up where the alerter already points."""

    def __init__(self, port: int):
        self.requests: list[tuple[float, dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((time.time(), dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attempts_logged(es, index: str) -> list[dict]:
    if not es.indices.exists(index=index):
        return []
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=1000, query={"match_all": {}})["hits"]["hits"]
    return sorted((h["_source"] for h in hits), key=lambda d: (d["delivery_id"], d["attempt"]))


@pytest.mark.timeout(300)
def test_alert_fired_while_the_receiver_is_down_is_retried_with_backoff_and_delivered_once(isolated, es):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    cfg = yaml.safe_load(isolated.config.read_text())
    # The default retry budget (an hour) outlasts the outage; waits: 0.5 s doubling, capped at 30 s.
    cfg["alerts"] = {"webhooks": [{"url": url, "format": "json", "secret": SECRET, "timeout_s": 2.0}]}
    isolated.config.write_text(yaml.safe_dump(cfg))
    s = type(isolated.settings).load(isolated.config)
    ensure_topics(s.kafka)
    deliveries = s.elasticsearch.deliveries_index

    # 40 quiet minutes for the baseline, then a negative burst about TSLA
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=45)
    history = list(Generator(seed=21, rate_per_s=3, duration_s=40 * 60, start=start).samples())
    burst = list(Generator(seed=22, rate_per_s=3, duration_s=5 * 60, start=start + timedelta(minutes=40),
                           scenarios=["burst:TSLA@30+90x2"]).samples())
    alerter = isolated.start("alerter", "--from-time", (start - timedelta(minutes=1)).isoformat())
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all", linger_ms=5)
    for smp in history + burst:
        ev = labeled_from_truth(smp)
        producer.send(s.kafka.topics.events, key=ev.doc_id.encode(), value=ev.model_dump_json().encode())
    producer.flush(); producer.close()

    # Nothing listens on the port yet: attempts fail with connection refused and are logged.
    def failing_long_enough():
        failed = [a for a in attempts_logged(es, deliveries) if a["status"] == "failed"]
        if not failed:
            return False
        first = min(datetime.fromisoformat(a["at"]) for a in failed)
        per_delivery = max(sum(1 for a in failed if a["delivery_id"] == d) for d in {a["delivery_id"] for a in failed})
        return per_delivery >= MIN_FAILED_ATTEMPTS and datetime.now(timezone.utc) - first >= timedelta(
            seconds=MIN_OUTAGE_S)

    try:
        wait_until(failing_long_enough, 150, 1.0, what="failed webhook attempts while the receiver is down")
    except AssertionError:
        pytest.fail(isolated.log_tail(alerter, 80))
    assert not any(a["status"] in ("delivered", "gave_up") for a in attempts_logged(es, deliveries))
    receiver_up_at = time.time()
    rx = HookReceiver(port)
    try:
        # The next retry (at most 30 s backoff away) reaches the receiver.
        wait_until(lambda: rx.requests and all(
            any(a["status"] == "delivered" for a in attempts_logged(es, deliveries) if a["delivery_id"] == d)
            for d in {a["delivery_id"] for a in attempts_logged(es, deliveries)}), 90, 1.0,
            what="every alert delivered once the receiver is back")
        time.sleep(3)  # a duplicate delivery, if any, would arrive now
        assert alerter.poll() is None, isolated.log_tail(alerter)

        log = attempts_logged(es, deliveries)
        by_delivery: dict[str, list[dict]] = {}
        for a in log:
            by_delivery.setdefault(a["delivery_id"], []).append(a)
        received = [headers[DELIVERY_HEADER] for _, headers, _ in rx.requests]

        # delivered exactly once per alert record (an escalation is a record of its own), signed,
        # and only after the receiver came back
        assert sorted(received) == sorted({a["delivery_id"] for a in log}), received
        assert {json.loads(body)["id"] for _, _, body in rx.requests} == {a["alert_id"] for a in log}
        for t, headers, body in rx.requests:
            assert t >= receiver_up_at
            assert verify(SECRET, headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER], body, headers[SIGNATURE_HEADER])
            assert headers[DELIVERY_HEADER] in by_delivery

        # the alert that fired during the outage: failed attempts 1..n-1 (connection refused), then one delivery
        outage = max(by_delivery.values(), key=len)
        assert len(outage) >= MIN_FAILED_ATTEMPTS + 1
        assert [a["attempt"] for a in outage] == list(range(1, len(outage) + 1))
        assert [a["status"] for a in outage] == ["failed"] * (len(outage) - 1) + ["delivered"]
        assert all(a["error"] and a["http_status"] is None for a in outage[:-1])
        assert outage[-1]["http_status"] == 200
        # exponential backoff with full jitter: the wait after failure k is drawn from [0, d_k] with
        # d_k = 0.5 s * 2^(k-1), capped at 30 s, so no wait has a floor. Asserted: no wait beyond its
        # cap (plus 15 s for a busy machine, which lengthens waits), and the total wait is not a
        # retry storm (the expected sum is half the caps' sum; a storm would be near zero).
        at = [datetime.fromisoformat(a["at"]).timestamp() for a in outage]
        gaps = [b - a for a, b in zip(at, at[1:])]
        caps = [min(0.5 * 2 ** k, 30.0) for k in range(len(gaps))]
        assert all(g <= c + 15.0 for g, c in zip(gaps, caps)), (gaps, caps)
        assert sum(gaps) >= MIN_OUTAGE_S, gaps  # the receiver was down that long: retries spanned it
        print(f"\nRESULT webhook outage: {len(outage) - 1} failed attempts, then delivered; waits "
              f"{[round(g, 2) for g in gaps]} s; {len(received)} alert(s) received once each")
    finally:
        rx.close()
