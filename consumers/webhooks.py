"""Alert delivery to analysts' webhooks: signed, retried with backoff + jitter, never blocking.

Each endpoint has its own queue and thread, so a slow or dead endpoint delays only itself. Every
attempt is reported to `on_attempt` (the alerter writes it to the delivery log).

Signature: ``X-Marketpulse-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` with
``X-Marketpulse-Timestamp: <unix seconds>``. Receivers recompute it over the raw body, compare in
constant time, and reject timestamps older than a few minutes (replays).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import httpx

from marketpulse.settings import WebhookEndpoint

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Marketpulse-Signature"
TIMESTAMP_HEADER = "X-Marketpulse-Timestamp"
DELIVERY_HEADER = "X-Marketpulse-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str | int, body: bytes, signature: str, tolerance_s: int = 300,
           now: float | None = None) -> bool:
    """Receiver-side check: right signature and a fresh timestamp."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now or time.time()) - ts) > tolerance_s:
        return False
    # Bytes, not str: compare_digest raises TypeError on non-ASCII strings, and a forged header
    # must be refused, not crash the receiver.
    return hmac.compare_digest(sign(secret, ts, body).encode(), str(signature).encode("utf-8", "surrogateescape"))


# Bidirectional overrides and isolates reorder what a reader sees ("Tesla" shown, "alseT" meant).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def slack_text(text: object) -> str:
    """Plain text for Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, so no text from a post or feed
    can become a mention (``<!channel>``) or a disguised link (``<https://x|Open dashboard>``)."""
    return _BIDI.sub("", str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(alert: dict, fmt: str) -> dict:
    if fmt == "json":
        return alert
    # Slack-compatible: a text fallback plus blocks.
    sev = slack_text(alert.get("severity", "warning")).upper()
    head = f"[{sev}] negative-sentiment spike: {slack_text(alert.get('key'))}"
    detail = (f"observed {alert.get('observed', 0):.1f} vs expected {alert.get('expected', 0):.1f} "
              f"(score {alert.get('score', 0):.1f}) in {slack_text(alert.get('window_start'))} – "
              f"{slack_text(alert.get('window_end'))}")
    lines = [f"• {slack_text(str(h.get('text', ''))[:200])}" for h in alert.get("top_events", [])[:5]]
    return {"text": f"{head}\n{detail}", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
        *([{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}] if lines else []),
    ]}


@dataclass
class Attempt:
    delivery_id: str
    alert_id: str
    endpoint: str
    attempt: int
    status: str  # delivered | failed | gave_up
    http_status: int | None
    error: str | None
    at: str
    duration_ms: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class WebhookDispatcher:
    def __init__(self, endpoints: list[WebhookEndpoint], default_secret: str,
                 on_attempt: Callable[[Attempt], None] = lambda a: None,
                 base_backoff_s: float = 0.5, max_backoff_s: float = 30.0, queue_size: int = 1000):
        self.endpoints = endpoints
        self.default_secret = default_secret
        self.on_attempt = on_attempt
        self.base_backoff_s, self.max_backoff_s = base_backoff_s, max_backoff_s
        self._queues = [queue.Queue(maxsize=queue_size) for _ in endpoints]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(ep, q), daemon=True, name=f"webhook-{i}")
                         for i, (ep, q) in enumerate(zip(endpoints, self._queues))]
        for t in self._threads:
            t.start()

    def submit(self, alert: dict) -> None:
        """Queue an alert for every endpoint; never blocks (a full queue drops with a logged gave_up)."""
        for ep, q in zip(self.endpoints, self._queues):
            try:
                q.put_nowait(alert)
            except queue.Full:
                self._report(Attempt(str(uuid.uuid4()), alert["id"], ep.url, 0, "gave_up", None, "queue full",
                                     _now(), 0.0))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued alert was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(q.unfinished_tasks == 0 for q in self._queues):
                return True
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 10.0) -> None:
        self.drain(timeout)
        self._stop.set()

    def _serve(self, ep: WebhookEndpoint, q: queue.Queue) -> None:
        with httpx.Client(timeout=ep.timeout_s) as client:
            while not self._stop.is_set():
                try:
                    alert = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    self._deliver(client, ep, alert)
                finally:
                    q.task_done()

    def _deliver(self, client: httpx.Client, ep: WebhookEndpoint, alert: dict) -> None:
        # An escalation re-sends the same alert id: it is a delivery of its own.
        delivery_id = f"{alert['id']}:{alert.get('status', 'opened')}:{hashlib.sha1(ep.url.encode()).hexdigest()[:8]}"
        body = json.dumps(render(alert, ep.format), default=str).encode()
        secret = ep.secret.get_secret_value() if ep.secret else self.default_secret
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            ts = int(time.time())
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
                       SIGNATURE_HEADER: sign(secret, ts, body), DELIVERY_HEADER: delivery_id,
                       "Idempotency-Key": delivery_id}
            t0 = time.perf_counter()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                resp = client.post(ep.url, content=body, headers=headers)
                status = resp.status_code
                if resp.is_success:
                    self._report(Attempt(delivery_id, alert["id"], ep.url, attempt, "delivered", status, None,
                                         _now(), _ms(t0)))
                    return
                error = f"HTTP {status}"
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            # Exponential backoff with full jitter (retries from many alerters don't synchronise);
            # a receiver's Retry-After is a lower bound.
            delay = random.uniform(0, min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1)))
            if retry_after is not None:
                delay = max(delay, retry_after)
            out_of_budget = time.monotonic() - started + delay > ep.retry_budget_s
            final = (out_of_budget or (ep.max_attempts is not None and attempt >= ep.max_attempts)
                     or (status is not None and 400 <= status < 500 and status not in (408, 429)))
            self._report(Attempt(delivery_id, alert["id"], ep.url, attempt, "gave_up" if final else "failed",
                                 status, error, _now(), _ms(t0)))
            if final:
                return
            if self._stop.wait(delay):
                return

    def _report(self, a: Attempt) -> None:
        log.info("webhook %s attempt %d: %s %s", a.endpoint, a.attempt, a.status, a.error or a.http_status)
        try:
            self.on_attempt(a)
        except Exception:  # the delivery log must not break delivery
            log.exception("delivery log failed")


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)

