"""kill -9 of the alerter while a webhook delivery is being retried: after the restart the alert is
delivered, once, and the endpoint that had already received it does not receive it again.

Reproduces the loss of the in-memory delivery queue: the snapshot said the incident was open, so a
restarted alerter never fired it again and the failing endpoint never got it. The alerts topic is
now the outbox (consumers/webhook_outbox.py): each endpoint's consumer commits an alert only after a
2xx or a final failure.
"""
import json
import signal
import threading
import time
from collections import Counter

import pytest
from kafka import KafkaConsumer, TopicPartition

from consumers.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from marketpulse.settings import mask_url
from tests.consumers.test_alerter_live import HANG_GUARD_S, Scene
from tests.consumers.test_webhooks_delivery import Receiver
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
SECRET = "hook-secret"


def delivery_log(bootstrap: str, topic: str) -> list[dict]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out = []
        while any(c.position(tp) < ends[tp] for tp in tps):
            for recs in c.poll(timeout_ms=1000).values():
                out += [json.loads(r.value) for r in recs]
        return out
    finally:
        c.close()


@pytest.mark.timeout(480)
def test_alerter_killed_during_webhook_retries_delivers_the_alert_once_after_restart(isolated, es):
    down = threading.Event()
    down.set()
    failing, healthy = Receiver(down=down), Receiver()
    hooks = [{"url": rx.url, "format": "json", "secret": SECRET, "timeout_s": 2.0} for rx in (failing, healthy)]
    scene = Scene(isolated, {"webhooks": hooks})
    s = scene.s
    scene.wait_read("the alerter to read the history")
    scene.send_burst()
    try:
        wait_until(lambda: len(failing.requests) >= 3 and healthy.statuses, HANG_GUARD_S,
                   what="the healthy endpoint served while the failing one is being retried")
    except AssertionError:
        pytest.fail(isolated.log_tail(scene.alerter, 60))
    isolated.stop(scene.alerter, signal.SIGKILL)
    failed_before_kill = len(failing.requests)
    down.clear()
    alerter = isolated.start("alerter")
    try:
        wait_until(lambda: 200 in failing.statuses, HANG_GUARD_S, what="the delivery after the restart")
    except AssertionError:
        pytest.fail(isolated.log_tail(alerter, 60))
    # A snapshot older than the alert makes the restarted alerter fire it again: a second record
    # on the topic, which must not reach either endpoint again. Wait for the alerter to catch up.
    scene.wait_read("the restarted alerter to read everything")
    time.sleep(5)  # a duplicate delivery, if any, would arrive now
    assert alerter.poll() is None, isolated.log_tail(alerter)

    for rx in (failing, healthy):
        delivered = Counter(h[DELIVERY_HEADER] for (h, _), st in zip(rx.requests, rx.statuses) if st == 200)
        assert delivered and all(n == 1 for n in delivered.values()), delivered
        for h, body in rx.requests:
            assert verify(SECRET, h[TIMESTAMP_HEADER], h[DELIVERY_HEADER], body, h[SIGNATURE_HEADER])
    assert {json.loads(b)["key"] for h, b in healthy.requests} >= {"ticker:TSLA"}
    assert len(failing.requests) > failed_before_kill

    # The log tells one story per delivery across both processes: attempts 1..n, one final.
    log = delivery_log(s.kafka.bootstrap, s.kafka.topics.webhook_deliveries)
    for did in {a["delivery_id"] for a in log}:
        attempts = sorted((a for a in log if a["delivery_id"] == did), key=lambda a: a["attempt"])
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1)), attempts
        assert [a["status"] for a in attempts] == ["failed"] * (len(attempts) - 1) + ["delivered"], attempts
    resumed = max((a for a in log if a["endpoint"] == mask_url(failing.url)), key=lambda a: a["attempt"])
    # the endpoint is logged masked: its path may be the hook's only secret
    assert all("/hook" not in a["endpoint"] for a in log)
    assert resumed["attempt"] > 3  # went on counting after the restart, not from 1
    failing.close(); healthy.close()
