"""Webhook delivery against a real HTTP server on 127.0.0.1: signed, retried, logged, non-blocking."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from consumers.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, render, sign, verify
from marketpulse.settings import WebhookEndpoint
from tests.support import wait_until

# Only a guard against a hang: waits end as soon as their condition holds, so this never sets the pace.
HANG_GUARD_S = 120
ALERT = {"id": "a1", "key": "ticker:TSLA", "severity": "critical", "observed": 40.0, "expected": 3.0, "score": 9.5,
         "window_start": "2026-11-23T14:00:00Z", "window_end": "2026-11-23T14:01:00Z",
         "top_events": [{"text": "Tesla recalls 2 million cars"}]}


class Receiver:
    """A real HTTP endpoint; `fail_first` requests get 503, then 200. With `hold`, every request waits
    for that event before it is answered (an endpoint that is as slow as the test wants)."""

    def __init__(self, fail_first: int = 0, hold: threading.Event | None = None):
        self.requests: list[tuple[dict, bytes]] = []
        self.answered = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                if hold is not None:
                    hold.wait(HANG_GUARD_S)
                outer.answered += 1
                self.send_response(503 if len(outer.requests) <= fail_first else 200)
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


def test_signature_verifies_and_rejects_tampering_and_replays():
    body, ts = b'{"a":1}', int(time.time())
    sig = sign("s3cret", ts, body)
    assert verify("s3cret", ts, body, sig)
    assert not verify("s3cret", ts, b'{"a":2}', sig)
    assert not verify("other", ts, body, sig)
    assert not verify("s3cret", ts - 3600, body, sign("s3cret", ts - 3600, body))  # too old: a replay


def test_endpoint_failing_twice_then_succeeding_gets_one_delivery_and_three_logged_attempts(receivers):
    rx = receivers(fail_first=2)
    attempts = []
    d = WebhookDispatcher([WebhookEndpoint(url=rx.url, secret="k", max_attempts=5)], "default",
                          on_attempt=attempts.append, base_backoff_s=0.05)
    d.submit(ALERT)
    assert d.drain(HANG_GUARD_S)
    d.close()
    assert [a.status for a in attempts] == ["failed", "failed", "delivered"]
    assert [a.attempt for a in attempts] == [1, 2, 3] and attempts[0].http_status == 503
    assert len({a.delivery_id for a in attempts}) == 1
    headers, body = rx.requests[-1]
    assert verify("k", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert json.loads(body)["id"] == "a1"
    assert len(rx.requests) == 3


def test_a_slow_endpoint_does_not_block_another(receivers):
    # Proven by order, not by speed: the slow endpoint holds its request until the test releases it,
    # so everything asserted before the release happened while the slow one was still waiting.
    release = threading.Event()
    slow, fast = receivers(hold=release), receivers()
    attempts = []
    d = WebhookDispatcher([WebhookEndpoint(url=slow.url, timeout_s=HANG_GUARD_S), WebhookEndpoint(url=fast.url)], "k",
                          on_attempt=attempts.append)
    try:
        # submit only queues: were it to wait for a delivery it could not return before the release
        submitter = threading.Thread(target=d.submit, args=(ALERT,), daemon=True)
        t0 = time.monotonic()
        submitter.start(); submitter.join(HANG_GUARD_S)
        submit_s = time.monotonic() - t0
        assert not submitter.is_alive(), "submit blocked on delivery"
        wait_until(lambda: slow.requests, HANG_GUARD_S, 0.02, what="the slow endpoint receiving its request")
        wait_until(lambda: any(a.endpoint == fast.url and a.status == "delivered" for a in attempts), HANG_GUARD_S,
                   0.02, what="the fast endpoint's delivery")
        fast_s = time.monotonic() - t0
        # the fast endpoint was served while the slow one still holds its request unanswered
        assert slow.answered == 0 and not [a for a in attempts if a.endpoint == slow.url]
    finally:
        release.set()
    assert d.drain(HANG_GUARD_S)
    d.close()
    assert [(a.endpoint, a.status) for a in attempts] == [(fast.url, "delivered"), (slow.url, "delivered")]
    print(f"\nsubmit returned in {submit_s * 1000:.1f} ms; fast endpoint delivered after {fast_s:.2f} s "
          "while the slow one was held")


def test_dead_endpoint_gives_up_after_max_attempts(receivers):
    attempts = []
    d = WebhookDispatcher([WebhookEndpoint(url="http://127.0.0.1:9/nothing", max_attempts=3, timeout_s=1)], "k",
                          on_attempt=attempts.append, base_backoff_s=0.01)
    d.submit(ALERT)
    assert d.drain(HANG_GUARD_S)
    d.close()
    assert [a.status for a in attempts] == ["failed", "failed", "gave_up"]
    assert all(a.error for a in attempts)


def test_slack_format_has_text_and_blocks():
    msg = render(ALERT, "slack")
    assert "ticker:TSLA" in msg["text"] and "CRITICAL" in msg["text"]
    assert msg["blocks"][0]["type"] == "header"
    assert "Tesla recalls" in json.dumps(msg["blocks"])


def test_a_forged_non_ascii_signature_is_refused_not_an_error():
    ts, body = int(time.time()), b'{"a":1}'
    assert not verify("s3cret", ts, body, "sha256=\u00e9\u00e9\u00e9")
    assert not verify("s3cret", ts, body, "\U0001F680")


def test_text_from_posts_cannot_become_slack_mentions_links_or_reversed_words(receivers):
    # What a double-escaped feed turns into after cleaning, plus a bidi override.
    hostile = {**ALERT, "key": "ticker:TSLA<!here>", "top_events": [
        {"text": "<!channel> Tesla recalls <https://evil.example|Open dashboard> & more \u202eslaeT\u202c"}]}
    rx = receivers()
    d = WebhookDispatcher([WebhookEndpoint(url=rx.url, format="slack", max_attempts=1)], "k")
    d.submit(hostile)
    assert d.drain(HANG_GUARD_S)
    d.close()
    sent = json.loads(rx.requests[0][1])
    everything = json.dumps(sent, ensure_ascii=False)
    assert "<!channel>" not in everything and "<!here>" not in everything and "<https://" not in everything
    assert "&lt;!channel&gt; Tesla recalls &lt;https://evil.example|Open dashboard&gt; &amp; more slaeT" in everything
    assert "\u202e" not in everything and "\u202c" not in everything


def test_a_receiver_s_retry_after_is_honoured_and_the_retries_stop_at_the_time_budget(receivers):
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
        d = WebhookDispatcher([WebhookEndpoint(url=f"http://127.0.0.1:{server.server_port}/h", retry_budget_s=2.5)],
                              "k", on_attempt=attempts.append, base_backoff_s=0.01)
        d.submit(ALERT)
        assert d.drain(HANG_GUARD_S)
        d.close()
    finally:
        server.shutdown()
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert gaps and all(g >= 0.95 for g in gaps), gaps  # never sooner than the receiver asked
    assert attempts[-1].status == "gave_up" and len(calls) <= 3  # 2.5 s budget, 1 s apart
