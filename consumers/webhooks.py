"""Alert delivery to one analyst webhook: signed, retried with backoff + full jitter until a 2xx,
a final failure or the stop signal.

Delivery is synchronous here; durability and "a slow endpoint delays only itself" come from the
outbox (``consumers.webhook_outbox``), which runs one of these per endpoint. Every attempt is
reported to ``on_attempt`` (the delivery log).

Signature: ``X-Marketpulse-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{delivery_id}.{body}")>``
with ``X-Marketpulse-Timestamp: <unix seconds>`` and ``X-Marketpulse-Delivery: <delivery_id>`` (also
sent as ``Idempotency-Key``). Receivers recompute it over the raw body, compare in constant time,
reject timestamps older than a few minutes (replays) and ignore a delivery id they already handled
(a retry after a lost answer). The delivery id is signed, so it cannot be swapped to defeat that.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import httpx

from marketpulse.consumer_loop import Stopped
from marketpulse.settings import WebhookEndpoint

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Marketpulse-Signature"
TIMESTAMP_HEADER = "X-Marketpulse-Timestamp"
DELIVERY_HEADER = "X-Marketpulse-Delivery"


def sign(secret: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.{delivery_id}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str | int, delivery_id: str, body: bytes, signature: str,
           tolerance_s: int = 300, now: float | None = None) -> bool:
    """Receiver-side check: right signature over timestamp, delivery id and body, and a fresh
    timestamp. Never raises: a forged header is refused, not a crash."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now or time.time()) - ts) > tolerance_s:
        return False
    # Bytes, not str: compare_digest raises TypeError on non-ASCII strings.
    expected = sign(secret, ts, str(delivery_id), body).encode()
    return hmac.compare_digest(expected, str(signature).encode("utf-8", "surrogateescape"))


def delivery_id(alert: dict, endpoint: WebhookEndpoint) -> str:
    """One delivery per alert record and endpoint; an escalation re-sends the same alert id, so the
    status is part of it."""
    return f"{alert['id']}:{alert.get('status', 'opened')}:{hashlib.sha1(endpoint.url.encode()).hexdigest()[:8]}"


# Bidirectional overrides and isolates reorder what a reader sees ("Tesla" shown, "alseT" meant).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def slack_text(text: object) -> str:
    """Plain text for Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, so no text from a post or feed
    can become a mention (``<!channel>``) or a disguised link (``<https://x|Open dashboard>``)."""
    return _BIDI.sub("", str(text)).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _why(event: dict) -> str:
    """The words that made a top event negative, when the alerter explained it."""
    words = event.get("explanation") or []
    return f" (why: {slack_text(', '.join(str(w) for w in words[:5]))})" if words else ""


def render(alert: dict, fmt: str) -> dict:
    if fmt == "json":
        return alert
    # Slack-compatible: a text fallback plus blocks.
    sev = slack_text(alert.get("severity", "warning")).upper()
    head = f"[{sev}] negative-sentiment spike: {slack_text(alert.get('key'))}"
    detail = (f"observed {alert.get('observed', 0):.1f} vs expected {alert.get('expected', 0):.1f} "
              f"(score {alert.get('score', 0):.1f}) in {slack_text(alert.get('window_start'))} – "
              f"{slack_text(alert.get('window_end'))}")
    lines = [f"• {slack_text(str(h.get('text', ''))[:200])}{_why(h)}" for h in alert.get("top_events", [])[:5]]
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

    FINAL = ("delivered", "gave_up")

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @property
    def final(self) -> bool:
        return self.status in self.FINAL


@dataclass
class Resume:
    """Where an earlier process left a delivery: attempts made and when the first one was."""

    attempts: int = 0
    first_at: float | None = None


class EndpointDelivery:
    """Delivers alerts to one endpoint, one at a time, each until a 2xx or a final failure."""

    def __init__(self, endpoint: WebhookEndpoint, default_secret: str, stop: threading.Event,
                 on_attempt: Callable[[Attempt], None] = lambda a: None,
                 base_backoff_s: float = 0.5, max_backoff_s: float = 30.0):
        self.ep = endpoint
        self.secret = endpoint.secret.get_secret_value() if endpoint.secret else default_secret
        self.stop = stop
        self.on_attempt = on_attempt
        self.base_backoff_s, self.max_backoff_s = base_backoff_s, max_backoff_s
        self.client = httpx.Client(timeout=endpoint.timeout_s)

    def close(self) -> None:
        self.client.close()

    def deliver(self, alert: dict, resume: Resume | None = None) -> Attempt:
        """The final attempt (delivered or gave_up). Raises ``Stopped`` when the stop signal comes
        while waiting to retry: the delivery is then not final, and the outbox does not commit it."""
        did = delivery_id(alert, self.ep)
        body = json.dumps(render(alert, self.ep.format), default=str).encode()
        resume = resume or Resume()
        started = resume.first_at if resume.first_at is not None else time.time()
        attempt = resume.attempts
        while True:
            attempt += 1
            ts = int(time.time())
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: str(ts),
                       SIGNATURE_HEADER: sign(self.secret, ts, did, body), DELIVERY_HEADER: did,
                       "Idempotency-Key": did}
            t0 = time.perf_counter()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                resp = self.client.post(self.ep.url, content=body, headers=headers)
                status = resp.status_code
                if resp.is_success:
                    return self._report(Attempt(did, alert["id"], self.ep.masked_url, attempt, "delivered", status, None,
                                                _now(), _ms(t0)))
                error = f"HTTP {status}"
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            except httpx.HTTPError as exc:
                # A timeout is not proof the receiver did nothing: the retry carries the same
                # delivery id, for the receiver to recognise.
                error = f"{type(exc).__name__}: {exc}"
            # Exponential backoff with full jitter (retries from many alerters don't synchronise);
            # a receiver's Retry-After is a lower bound.
            delay = random.uniform(0, min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1)))
            if retry_after is not None:
                delay = max(delay, retry_after)
            out_of_budget = time.time() - started + delay > self.ep.retry_budget_s
            final = (out_of_budget or (self.ep.max_attempts is not None and attempt >= self.ep.max_attempts)
                     or (status is not None and 400 <= status < 500 and status not in (408, 429)))
            last = self._report(Attempt(did, alert["id"], self.ep.masked_url, attempt, "gave_up" if final else "failed",
                                        status, error, _now(), _ms(t0)))
            if final:
                return last
            if self.stop.wait(delay):
                raise Stopped(f"delivery {did}")

    def _report(self, a: Attempt) -> Attempt:
        log.info("webhook %s attempt %d: %s %s", a.endpoint, a.attempt, a.status, a.error or a.http_status)
        self.on_attempt(a)
        return a


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
