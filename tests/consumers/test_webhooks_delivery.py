"""Webhook delivery against a real HTTP server on 127.0.0.1: signed, retried, logged; and the
outbox handler that delivers the alerts topic's records one by one, committing only what is final."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consumers.webhook_outbox import DeliveryHandler, DeliveryHistory
from consumers.webhooks import (DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, EndpointDelivery, delivery_id,
                                render, sign, verify)
from marketpulse import wire
from marketpulse.consumer_loop import ConsumerLoop, MemorySink, MemorySource, Stopped
from marketpulse.settings import WebhookEndpoint
from marketpulse.wire import InRecord
from tests.support import wait_until

# Only a guard against a hang: waits end as soon as their condition holds, so this never sets the pace.
HANG_GUARD_S = 120
ALERT = {"id": "a1", "key": "ticker:TSLA", "key_type": "ticker", "status": "opened", "severity": "critical",
         "observed": 40.0, "expected": 3.0, "score": 9.5,
         "window_start": "2026-11-23T14:00:00Z", "window_end": "2026-11-23T14:01:00Z",
         "top_events": [{"id": "n1", "source": "news", "source_name": "wire", "text": "Tesla recalls 2 million cars",
                         "weight": 0.97, "published_at": "2026-11-23T14:00:10Z"}],
         "es_query": {"query": {"match_all": {}}}, "drilldown": "ticker_symbols:TSLA"}


def deliverer(url: str, attempts: list | None = None, stop: threading.Event | None = None, **endpoint) -> EndpointDelivery:
    return EndpointDelivery(WebhookEndpoint(url=url, **endpoint), "k", stop or threading.Event(),
                            on_attempt=(attempts if attempts is not None else []).append, base_backoff_s=0.01)


def signed_ok(headers: dict, body: bytes, secret: str = "k") -> bool:
    return verify(secret, headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER], body, headers[SIGNATURE_HEADER])


class Receiver:
    """A real HTTP endpoint; `fail_first` requests get 503, then 200, and so does every request while
    `down` is set. With `hold`, every request waits for that event before it is answered (an
    endpoint that is as slow as the test wants). `statuses` are the answers, in request order."""

    def __init__(self, fail_first: int = 0, hold: threading.Event | None = None, down: threading.Event | None = None):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.answered = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                n = len(outer.requests)
                if hold is not None:
                    hold.wait(HANG_GUARD_S)
                status = 503 if n <= fail_first or (down is not None and down.is_set()) else 200
                outer.statuses.append(status)
                outer.answered += 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receivers():
    made = []
    yield lambda **kw: made.append(Receiver(**kw)) or made[-1]
    for r in made:
        r.close()


def test_signature_covers_timestamp_delivery_id_and_body_and_refuses_replays():
    body, ts, did = b'{"a":1}', int(time.time()), "a1:opened:0badcafe"
    sig = sign("s3cret", ts, did, body)
    assert verify("s3cret", ts, did, body, sig)
    assert not verify("s3cret", ts, did, b'{"a":2}', sig)
    assert not verify("other", ts, did, body, sig)
    # a delivery id swapped to slip past the receiver's duplicate check is a forgery
    assert not verify("s3cret", ts, "a1:opened:other", body, sig)
    assert not verify("s3cret", ts - 3600, did, body, sign("s3cret", ts - 3600, did, body))  # too old: a replay


def test_a_forged_non_ascii_signature_is_refused_not_an_error():
    ts, body = int(time.time()), b'{"a":1}'
    assert not verify("s3cret", ts, "d", body, "sha256=\u00e9\u00e9\u00e9")
    assert not verify("s3cret", ts, "d", body, "\U0001F680")
    assert not verify("s3cret", ts, "\U0001F680", body, "sha256=00")


def test_endpoint_failing_twice_then_succeeding_gets_one_delivery_and_three_logged_attempts(receivers):
    rx = receivers(fail_first=2)
    attempts = []
    final = deliverer(rx.url, attempts, secret="k2", max_attempts=5).deliver(ALERT)
    assert final.status == "delivered" and final is attempts[-1]
    assert [a.status for a in attempts] == ["failed", "failed", "delivered"]
    assert [a.attempt for a in attempts] == [1, 2, 3] and attempts[0].http_status == 503
    assert {a.delivery_id for a in attempts} == {delivery_id(ALERT, WebhookEndpoint(url=rx.url))}
    headers, body = rx.requests[-1]
    assert signed_ok(headers, body, "k2") and headers["Idempotency-Key"] == headers[DELIVERY_HEADER]
    assert json.loads(body)["id"] == "a1"
    assert len(rx.requests) == 3


def test_dead_endpoint_gives_up_after_max_attempts():
    attempts = []
    final = deliverer("http://127.0.0.1:9/nothing", attempts, max_attempts=3, timeout_s=1).deliver(ALERT)
    assert final.status == "gave_up"
    assert [a.status for a in attempts] == ["failed", "failed", "gave_up"]
    assert all(a.error for a in attempts)


def test_a_client_error_is_final_at_once_but_408_and_429_are_retried(receivers):
    import http.server

    codes = iter([408, 429, 404])

    class Picky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(next(codes))
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Picky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    attempts = []
    try:
        deliverer(f"http://127.0.0.1:{server.server_port}/h", attempts).deliver(ALERT)
    finally:
        server.shutdown()
    assert [(a.http_status, a.status) for a in attempts] == [(408, "failed"), (429, "failed"), (404, "gave_up")]


def test_a_receiver_answering_after_the_timeout_gets_the_retry_under_the_same_signed_delivery_id(receivers):
    # It may have acted on the first request: only the delivery id lets it recognise the second.
    release = threading.Event()
    rx = receivers(hold=release)
    attempts = []
    d = deliverer(rx.url, attempts, timeout_s=0.5)
    d.base_backoff_s = 0.0  # retry at once
    threading.Timer(0, lambda: wait_until(lambda: len(rx.requests) >= 2, HANG_GUARD_S, 0.01) and release.set()).start()
    final = d.deliver(ALERT)
    assert [a.status for a in attempts][:1] == ["failed"] and "Timeout" in attempts[0].error
    assert final.status == "delivered"
    ids = {h[DELIVERY_HEADER] for h, _ in rx.requests}
    assert len(ids) == 1 and {h["Idempotency-Key"] for h, _ in rx.requests} == ids
    assert all(signed_ok(h, b) for h, b in rx.requests)
    assert len({b for _, b in rx.requests}) == 1


def test_the_stop_signal_ends_a_delivery_between_retries_without_a_final_attempt():
    stop, attempts = threading.Event(), []
    d = deliverer("http://127.0.0.1:9/nothing", attempts, stop=stop, timeout_s=1)
    d.base_backoff_s = 30.0  # the wait after the first failure is what the stop interrupts
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(Stopped):
        d.deliver(ALERT)
    assert [a.status for a in attempts] == ["failed"] * len(attempts) and attempts


def test_slack_format_has_text_and_blocks():
    msg = render(ALERT, "slack")
    assert "ticker:TSLA" in msg["text"] and "CRITICAL" in msg["text"]
    assert msg["blocks"][0]["type"] == "header"
    assert "Tesla recalls" in json.dumps(msg["blocks"])


def test_slack_lines_carry_the_words_that_explain_each_top_event():
    explained = {**ALERT, "top_events": [{**ALERT["top_events"][0], "explanation": ["recalls", "<!here>"]},
                                         {"text": "TSLA slips", "explanation": []}]}
    [lines] = [b["text"]["text"] for b in render(explained, "slack")["blocks"] if "Tesla recalls" in b["text"]["text"]]
    first, second = lines.split("\n")
    assert first.endswith("(why: recalls, &lt;!here&gt;)")  # escaped like any text from a post
    assert second == "• TSLA slips"


def test_text_from_posts_cannot_become_slack_mentions_links_or_reversed_words(receivers):
    # What a double-escaped feed turns into after cleaning, plus a bidi override.
    hostile = {**ALERT, "key": "ticker:TSLA<!here>", "top_events": [
        {"text": "<!channel> Tesla recalls <https://evil.example|Open dashboard> & more \u202eslaeT\u202c"}]}
    rx = receivers()
    deliverer(rx.url, format="slack", max_attempts=1).deliver(hostile)
    sent = json.loads(rx.requests[0][1])
    everything = json.dumps(sent, ensure_ascii=False)
    assert "<!channel>" not in everything and "<!here>" not in everything and "<https://" not in everything
    assert "&lt;!channel&gt; Tesla recalls &lt;https://evil.example|Open dashboard&gt; &amp; more slaeT" in everything
    assert "\u202e" not in everything and "\u202c" not in everything


def test_a_receiver_s_retry_after_is_honoured_and_the_retries_stop_at_the_time_budget():
    import http.server

    calls = []

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(time.monotonic())
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    attempts = []
    try:
        deliverer(f"http://127.0.0.1:{server.server_port}/h", attempts, retry_budget_s=2.5).deliver(ALERT)
    finally:
        server.shutdown()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps and all(g >= 0.95 for g in gaps), gaps  # never sooner than the receiver asked
    assert attempts[-1].status == "gave_up" and len(calls) <= 3  # 2.5 s budget, 1 s apart


# -- the outbox handler ---------------------------------------------------------------------------
def alert_records(*alerts: dict) -> list[InRecord]:
    outs = [wire.encode_alert(a, "alerts") for a in alerts]
    return [InRecord(o.value, o.key, o.topic, 0, i, o.headers) for i, o in enumerate(outs)]


def outbox(url: str, records: list[InRecord], history: DeliveryHistory | None = None, **endpoint):
    log = MemorySink()
    handler = DeliveryHandler(deliverer(url, **endpoint), log, "deliveries", history=history)
    source = MemorySource(records, batch=1)
    return ConsumerLoop(source, handler, name="test-webhooks"), source, log


def logged(log: MemorySink) -> list[dict]:
    return [json.loads(r.value) for r in log.topic("deliveries")]


def opened(alert_id: str) -> dict:
    return {**ALERT, "id": alert_id, "fired_at": "2026-11-23T14:01:05+00:00"}


def test_the_outbox_commits_an_alert_only_after_it_is_delivered_and_its_attempts_are_logged(receivers):
    rx = receivers(fail_first=1)
    loop, source, log = outbox(rx.url, alert_records(opened("a1"), opened("a2")))
    loop.step()
    assert source.committed == 1  # one alert per step: a kill later does not re-send this one
    assert [(d["alert_id"], d["status"]) for d in logged(log)] == [("a1", "failed"), ("a1", "delivered")]
    loop.step()
    assert source.committed == 2 and [json.loads(b)["id"] for _, b in rx.requests] == ["a1", "a1", "a2"]
    # the webhook gets the published document whole, fired_at included
    assert json.loads(rx.requests[-1][1])["fired_at"] == "2026-11-23T14:01:05+00:00"


def test_an_alert_published_twice_is_delivered_once(receivers):
    # A restarted alerter that resumes from a snapshot older than an alert fires it again.
    rx = receivers()
    loop, source, _ = outbox(rx.url, alert_records(opened("a1"), opened("a1"), {**opened("a1"), "status": "escalated"}))
    while not source.exhausted:
        loop.step()
    assert [(json.loads(b)["id"], json.loads(b)["status"]) for _, b in rx.requests] == [("a1", "opened"),
                                                                                        ("a1", "escalated")]
    assert source.committed == 3


def test_an_interrupted_delivery_goes_on_with_its_attempt_count_and_budget_from_the_log(receivers):
    rx = receivers()
    did = delivery_id(opened("a1"), WebhookEndpoint(url=rx.url))
    history = DeliveryHistory()
    from consumers.webhooks import Attempt
    for n in (1, 2):  # what the delivery log held from the killed process
        history.record(Attempt(did, "a1", rx.url, n, "failed", None, "ConnectError", "2026-11-23T14:01:06+00:00", 1.0))
    loop, source, log = outbox(rx.url, alert_records(opened("a1")), history=history, retry_budget_s=10**9)
    loop.step()
    assert [(d["attempt"], d["status"]) for d in logged(log)] == [(3, "delivered")]
    # and a budget counted from the first attempt, not from the restart
    history2 = DeliveryHistory()
    history2.record(Attempt(did, "a1", rx.url, 1, "failed", None, "x", "2020-01-01T00:00:00+00:00", 1.0))
    dead = "http://127.0.0.1:9/nothing"
    did2 = delivery_id(opened("a1"), WebhookEndpoint(url=dead))
    history2.record(Attempt(did2, "a1", dead, 1, "failed", None, "x", "2020-01-01T00:00:00+00:00", 1.0))
    loop2, _, log2 = outbox(dead, alert_records(opened("a1")), history=history2, timeout_s=1)
    loop2.step()
    assert [(d["attempt"], d["status"]) for d in logged(log2)] == [(2, "gave_up")]


def test_a_stop_during_retries_commits_nothing_so_the_next_process_delivers_it():
    stop = threading.Event()
    log = MemorySink()
    d = deliverer("http://127.0.0.1:9/nothing", stop=stop, timeout_s=1)
    d.base_backoff_s = 30.0
    source = MemorySource(alert_records(opened("a1")), batch=1)
    loop = ConsumerLoop(source, DeliveryHandler(d, log, "deliveries"), name="test-webhooks")
    threading.Timer(0.5, stop.set).start()
    loop.run(stop)
    assert source.committed == 0 and source.position == 0  # rewound: the alert comes again


def test_an_unreadable_alert_record_is_skipped_not_a_stuck_outbox(receivers):
    rx = receivers()
    bad = InRecord(b"not json", b"k", "alerts", 0, 0, ((wire.SCHEMA_HEADER, b"alert/1.0"),))
    good = alert_records(opened("a2"))[0]
    loop, source, _ = outbox(rx.url, [bad, InRecord(good.value, good.key, "alerts", 0, 1, good.headers)])
    loop.step(); loop.step()
    assert source.committed == 2 and [json.loads(b)["id"] for _, b in rx.requests] == ["a2"]


def test_the_delivery_log_and_the_settings_show_a_webhook_url_masked(receivers):
    from marketpulse.settings import Settings

    secret_path = "/services/T0001/B0001/s3cr3tT0ken"
    rx = receivers()
    url = rx.url.replace("/hook", secret_path)
    attempts = []
    deliverer(url, attempts).deliver(ALERT)
    assert attempts[-1].status == "delivered"
    assert "s3cr3tT0ken" not in json.dumps([a.as_dict() for a in attempts])
    assert attempts[-1].endpoint.startswith("http://127.0.0.1:")
    shown = Settings(alerts={"webhooks": [{"url": url}]}).model_dump_json()
    assert "s3cr3tT0ken" not in shown and "127.0.0.1" in shown
