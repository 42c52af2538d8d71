"""The event clock: the slowest backlogged partition while catching up, no watermark ahead of the
wall clock by more than the future-skew bound, time moving on in quiet streams."""
from marketpulse.event_clock import EventClock

NOW = 1_700_000_000.0


class Clocks:
    def __init__(self):
        self.wall, self.mono = NOW, 0.0


def make(skew=300, lateness=15):
    c = Clocks()
    return EventClock(lateness, skew, wall=lambda: c.wall, monotonic=lambda: c.mono), c


def test_caught_up_the_watermark_is_the_newest_event_time_of_any_partition():
    clock, _ = make()
    clock.observe(0, NOW - 100)
    clock.observe(1, NOW - 50)
    assert clock.watermark() == NOW - 50


def test_catching_up_the_watermark_is_the_slowest_partition_that_still_has_a_backlog():
    clock, _ = make()
    clock.observe(0, NOW - 100)
    clock.observe(1, NOW - 50)
    assert clock.watermark(lagging=[0, 1]) == NOW - 100
    assert clock.watermark(lagging=[1]) == NOW - 50
    # A backlogged partition not read yet may hold older events: no watermark at all.
    assert clock.watermark(lagging=[0, 2]) is None


def test_an_event_dated_beyond_the_future_skew_is_not_admitted_and_moves_nothing():
    clock, _ = make(skew=300)
    clock.observe(0, NOW - 10)
    assert not clock.observe(0, NOW + 86_400)  # one day ahead: a clock gone wrong
    assert not clock.observe(1, 32_503_680_000.0)  # year 3000
    assert clock.watermark() == NOW - 10
    assert clock.observe(0, NOW + 299)  # within the bound: a slightly fast producer is fine
    assert clock.watermark() == NOW + 299


def test_the_watermark_never_runs_ahead_of_the_wall_clock_plus_the_skew():
    clock, c = make(skew=300)
    clock.observe(0, NOW + 200)
    c.wall = NOW - 1000  # the wall clock stepped back (NTP), the event time stays
    assert clock.watermark() == NOW - 700


def test_a_quiet_stream_moves_on_with_the_wall_clock_after_the_idle_time():
    clock, c = make()
    assert clock.idle_watermark(5) is None  # nothing seen yet
    clock.observe(0, NOW - 60)
    c.mono += 3
    assert clock.idle_watermark(5) is None
    c.mono += 7
    assert clock.idle_watermark(5) == NOW - 50


def test_a_reordering_reader_releases_an_event_once_every_partition_is_the_lateness_past_it():
    clock, _ = make(lateness=15)
    assert not clock.releases(100.0, [110.0, 200.0])
    assert clock.releases(100.0, [115.0, 200.0])
    assert clock.releases(100.0, [])  # every partition finished
