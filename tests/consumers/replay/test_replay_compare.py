"""Comparison of alert configurations: overlap matching and lead time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from consumers.alerting.alert import build_alert
from consumers.replay.compare import compare_alerts, match_incidents

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc).timestamp()
B = 60


def alert(key: str, bucket: int, status: str = "opened", span: int = 1, severity: str = "warning"):
    start = T0 + bucket * B
    return build_alert(key=key, incident_start=start, window_end=start + span * B, observed=10, expected=1,
                       score=5, severity=severity, status=status, contributors=[], total=20)


def test_same_key_within_tolerance_matches_and_lead_is_positive_when_a_fires_first():
    a = [alert("ticker:TSLA", 30), alert("topic:Earnings", 10)]
    b = [alert("ticker:TSLA", 33), alert("ticker:AAPL", 10)]
    p = match_incidents(a, b, B, tolerance_buckets=5, a="loose", b="strict")
    assert [(m.key, m.lead_s) for m in p.matches] == [("ticker:TSLA", 180.0)]
    assert [x.key for x in p.only_a] == ["topic:Earnings"] and [x.key for x in p.only_b] == ["ticker:AAPL"]
    assert p.a_earlier == 1 and p.b_earlier == 0 and p.median_lead_s == 180.0
    assert p.jaccard == 1 / 3


def test_windows_too_far_apart_or_other_keys_do_not_overlap():
    p = match_incidents([alert("ticker:TSLA", 30)], [alert("ticker:TSLA", 40)], B, tolerance_buckets=5)
    assert p.overlap == 0 and len(p.only_a) == len(p.only_b) == 1
    # The gap is measured between windows, so a long incident window reaches further.
    p = match_incidents([alert("ticker:TSLA", 30, span=6)], [alert("ticker:TSLA", 40)], B, tolerance_buckets=5)
    assert p.overlap == 1 and p.matches[0].lead_s == (41 - 36) * B


def test_matching_is_one_to_one_closest_first_and_ignores_escalations():
    a = [alert("market", 20), alert("market", 26)]
    b = [alert("market", 25), alert("market", 25, status="escalated", span=2)]
    p = match_incidents(a, b, B, tolerance_buckets=5)
    assert p.overlap == 1 and p.matches[0].a.window_start.timestamp() == T0 + 26 * B
    assert p.matches[0].lead_s == -60.0 and p.b_earlier == 1
    assert [x.window_start.timestamp() for x in p.only_a] == [T0 + 20 * B] and not p.only_b


def test_compare_counts_every_config_and_every_pair():
    c = compare_alerts({"a": [alert("market", 1), alert("market", 1, "escalated", 2, "critical")],
                        "b": [alert("market", 2)], "c": []}, B)
    assert c.counts["a"] == {"incidents": 1, "escalations": 1, "critical": 1}
    assert [(p.a, p.b, p.overlap) for p in c.pairs] == [("a", "b", 1), ("a", "c", 0), ("b", "c", 0)]
