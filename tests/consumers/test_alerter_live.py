"""The live alerter on the real stack: a negative burst about one ticker -> one alert in the alerts
index, one signed webhook delivery, and state that survives a restart."""
import json
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from kafka import KafkaProducer

from consumers.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from stream.generate import Generator
from marketpulse.kafka_topics import ensure_topics
from tests.consumers.test_webhooks_delivery import Receiver
from tests.support import labeled_from_truth, topic_end_total, wait_until

pytestmark = pytest.mark.integration
# Only a guard against a hang: every wait ends as soon as its condition holds. How fast an alert
# fires is measured and printed here, not asserted (a busy machine is not a broken alerter).
HANG_GUARD_S = 180


def _send(producer, topic, samples):
    for smp in samples:
        ev = labeled_from_truth(smp)
        producer.send(topic, key=ev.doc_id.encode(), value=ev.model_dump_json().encode())
    producer.flush()


def _tsla_alerts(es, index):
    if not es.indices.exists(index=index):
        return []
    es.indices.refresh(index=index)
    return [h["_source"] for h in es.search(index=index, size=100, query={"term": {"key": "ticker:TSLA"}})["hits"]["hits"]]


def _tsla_calls(rx):
    return [(h, b) for h, b in rx.requests if json.loads(b)["key"] == "ticker:TSLA"]


def _delivery_log(es, index, alert_id):
    if not es.indices.exists(index=index):
        return []
    es.indices.refresh(index=index)
    return [h["_source"]["status"] for h in es.search(index=index, query={"term": {"alert_id": alert_id}})["hits"]["hits"]]


def test_burst_fires_one_signed_alert_and_state_survives_restart(isolated, es):
    rx = Receiver()
    cfg = yaml.safe_load(isolated.config.read_text())
    cfg["alerts"] = {"webhooks": [{"url": rx.url, "format": "json", "secret": "hook-secret"}],
                     "snapshot_interval_s": 1.0}
    isolated.config.write_text(yaml.safe_dump(cfg))
    s = type(isolated.settings).load(isolated.config)
    ensure_topics(s.kafka)
    producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all")

    # 40 quiet minutes, ending 3 minutes ago, then a 2-minute negative burst about TSLA, then quiet again
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=45)
    history = list(Generator(seed=11, rate_per_s=3, duration_s=40 * 60, start=start).samples())
    burst_at = start + timedelta(minutes=40)
    burst = list(Generator(seed=12, rate_per_s=3, duration_s=5 * 60, start=burst_at,
                           scenarios=["burst:TSLA@30+90x2"]).samples())
    split = int(len(history) * 0.6)

    alerter = isolated.start("alerter", "--from-time", (start - timedelta(minutes=1)).isoformat())
    _send(producer, s.kafka.topics.events, history[:split])
    # the alerter is running (its signal handlers are set) once it has saved a snapshot
    wait_until(lambda: topic_end_total(s.kafka.bootstrap, s.kafka.topics.alerter_state) > 0, HANG_GUARD_S,
               what="a first snapshot")
    # restart mid-history: the baseline must come back from the snapshot, not start over
    assert isolated.stop(alerter, signal.SIGTERM) == 0, isolated.log_tail(alerter)
    alerter = isolated.start("alerter")
    _send(producer, s.kafka.topics.events, history[split:])
    wait_until(lambda: "resumed from snapshot" in isolated.log_text(alerter), HANG_GUARD_S, what="snapshot resume")

    t0 = time.monotonic()
    _send(producer, s.kafka.topics.events, burst)
    # the burst may also raise market and topic alerts, delivered in any order: wait for TSLA's
    wait_until(lambda: _tsla_calls(rx), HANG_GUARD_S, what="the TSLA webhook call")
    latency = time.monotonic() - t0
    wait_until(lambda: _tsla_alerts(es, s.elasticsearch.alerts_index), HANG_GUARD_S, what="the alert indexed")
    time.sleep(3)  # a second alert or delivery, if any, would arrive now
    assert alerter.poll() is None, isolated.log_tail(alerter)

    alerts = _tsla_alerts(es, s.elasticsearch.alerts_index)
    assert len(alerts) == 1, alerts  # none during the quiet history, one for the burst
    a = alerts[0]
    assert a["severity"] in ("warning", "critical") and a["observed"] > a["expected"]
    assert burst_at <= datetime.fromisoformat(a["window_start"]) <= burst_at + timedelta(minutes=3)
    assert any("TSLA" in e["text"] or "Tesla" in e["text"] for e in a["top_events"])
    # explained before it was published (the model loaded at this first alert): words of the text shown
    assert any(e["explanation"] for e in a["top_events"])
    assert all(set(e["explanation"]) <= set(e["text"].split()) for e in a["top_events"])

    tsla_calls = _tsla_calls(rx)
    assert len({json.loads(b)["id"] for _, b in tsla_calls}) == 1
    headers, body = tsla_calls[0]
    assert [e["explanation"] for e in json.loads(body)["top_events"]] == [e["explanation"] for e in a["top_events"]]
    assert verify("hook-secret", headers[TIMESTAMP_HEADER], headers[DELIVERY_HEADER], body, headers[SIGNATURE_HEADER])

    # the attempt is logged after the receiver answered: wait for it rather than read it at once
    logged = wait_until(lambda: _delivery_log(es, s.elasticsearch.deliveries_index, a["id"]), HANG_GUARD_S,
                        what="the delivery logged")
    assert set(logged) == {"delivered"}, logged
    rx.close()
    print(f"\nRESULT live alerter: webhook called {latency:.1f} s after the burst was sent")


def _committed_total(bootstrap: str, group: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})  # this kafka-python returns {group: {tp: meta}}
        return sum(meta.offset for meta in offsets.values() if meta.offset > 0)
    finally:
        admin.close()


class Scene:
    """A running alerter that has read 40 quiet minutes (ending 5 minutes ago), and the 5 minutes
    after them holding a negative burst about TSLA, not sent yet."""

    def __init__(self, isolated, alerts: dict, es_timeout_s: float | None = None):
        cfg = yaml.safe_load(isolated.config.read_text())
        cfg["alerts"] = {**alerts, "snapshot_interval_s": 1.0}
        if es_timeout_s is not None:
            cfg["elasticsearch"]["request_timeout_s"] = es_timeout_s
        isolated.config.write_text(yaml.safe_dump(cfg))
        self.s = s = type(isolated.settings).load(isolated.config)
        ensure_topics(s.kafka)
        self.producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all")
        start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=45)
        self.history = list(Generator(seed=11, rate_per_s=3, duration_s=40 * 60, start=start).samples())
        self.burst_at = start + timedelta(minutes=40)
        self.burst = list(Generator(seed=12, rate_per_s=3, duration_s=5 * 60, start=self.burst_at,
                                    scenarios=["burst:TSLA@30+90x2"]).samples())
        self.alerter = isolated.start("alerter", "--from-time", (start - timedelta(minutes=1)).isoformat())
        _send(self.producer, s.kafka.topics.events, self.history)

    def wait_read(self, what: str) -> None:
        """Until the alerter has read (and snapshotted) everything sent so far."""
        end = topic_end_total(self.s.kafka.bootstrap, self.s.kafka.topics.events)
        wait_until(lambda: _committed_total(self.s.kafka.bootstrap, self.s.kafka.alerter_group) >= end,
                   HANG_GUARD_S, what=what)

    def send_burst(self) -> None:
        _send(self.producer, self.s.kafka.topics.events, self.burst)


def test_a_record_dated_a_day_ahead_does_not_blind_the_alerter(isolated, es):
    # Once caught up, event time follows the newest event: a record dated +1 day used to close a day
    # of buckets, so the burst after it was dropped as late and raised nothing.
    scene = Scene(isolated, {})
    s = scene.s
    ahead = labeled_from_truth(scene.history[-1]).model_copy(update={
        "id": "from-the-future", "published_at": datetime.now(timezone.utc) + timedelta(days=1)})
    scene.producer.send(s.kafka.topics.events, key=ahead.doc_id.encode(), value=ahead.model_dump_json().encode())
    scene.producer.flush()
    scene.wait_read("the alerter to read the future-dated record")
    scene.send_burst()

    alerts = wait_until(lambda: _tsla_alerts(es, s.elasticsearch.alerts_index), HANG_GUARD_S,
                        what="the burst's alert despite the future-dated record")
    assert scene.burst_at <= datetime.fromisoformat(alerts[0]["window_start"]) <= scene.burst_at + timedelta(minutes=3)
    assert "future-skew bound" in isolated.log_text(scene.alerter)
    assert scene.alerter.poll() is None, isolated.log_tail(scene.alerter)


@pytest.mark.reliability
@pytest.mark.timeout(480)
def test_elasticsearch_down_while_an_alert_fires_the_webhook_still_gets_it_and_the_index_catches_up(isolated, es):
    from tests.support import ensure_stack_running, paused, stack_pid

    rx = Receiver()
    scene = Scene(isolated, {"webhooks": [{"url": rx.url, "format": "json", "secret": "hook-secret"}]},
                  es_timeout_s=5.0)
    s, alerter = scene.s, scene.alerter
    scene.wait_read("the alerter to read the history")
    try:
        with paused(stack_pid("elasticsearch")):
            scene.send_burst()
            # the burst may also raise market and topic alerts, delivered in any order: wait for TSLA's
            wait_until(lambda: _tsla_calls(rx), HANG_GUARD_S, what="the TSLA webhook call while Elasticsearch is down")
            assert alerter.poll() is None, isolated.log_tail(alerter)
    finally:
        ensure_stack_running()
    alerts = wait_until(lambda: _tsla_alerts(es, s.elasticsearch.alerts_index), HANG_GUARD_S,
                        what="the alert in the index once Elasticsearch is back")
    assert {json.loads(b)["id"] for _, b in _tsla_calls(rx)} == {alerts[0]["id"]}
    assert alerter.poll() is None, isolated.log_tail(alerter)
    rx.close()
