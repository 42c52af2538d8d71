"""Reading a real series export for `marketpulse detect`: sort, merge, gaps, and what was fixed."""
from __future__ import annotations

from pathlib import Path

import pytest

from consumers.alerting.series import SeriesError, clean_series, parse_timestamp, read_series


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def series_csv(tmp_path: Path, rows: list[tuple], header: str = "timestamp,value") -> Path:
    return write_csv(tmp_path / "s.csv", [header] + [",".join(str(x) for x in r) for r in rows])


def values(series) -> list[float]:
    return [r.value for r in series.rows]


def timestamps(series) -> list[float]:
    return [r.timestamp for r in series.rows]


# -- order and duplicates -------------------------------------------------------------------------

def test_unsorted_rows_are_sorted_by_timestamp_and_counted_as_out_of_order(tmp_path):
    s = read_series(series_csv(tmp_path, [(120, 3), (0, 1), (60, 2), (180, 4)]))
    assert timestamps(s) == [0, 60, 120, 180]
    assert values(s) == [1, 2, 3, 4]
    assert [r.row for r in s.rows] == [3, 4, 2, 5]  # input row numbers travel with the rows
    assert s.summary.out_of_order == 2


def test_duplicate_timestamps_of_a_count_series_are_summed(tmp_path):
    s = read_series(series_csv(tmp_path, [(0, 1), (60, 2), (60, 3), (120, 4)]))
    assert s.kind == "count" and s.summary.aggregate == "sum"
    assert timestamps(s) == [0, 60, 120]
    assert values(s) == [1, 5, 4]
    merged = s.rows[1]
    assert (merged.timestamp_raw, merged.value_raw, merged.row, merged.merged) == ("60", "5", 3, 2)
    assert (s.summary.duplicate_timestamps, s.summary.duplicate_rows) == (1, 1)


def test_duplicate_timestamps_of_a_level_series_are_averaged(tmp_path):
    s = read_series(series_csv(tmp_path, [(0, 41.5), (60, 40.0), (60, 44.0), (60, 42.0), (120, 39.25)]))
    assert s.kind == "level" and s.summary.aggregate == "mean"
    assert values(s) == [41.5, 42.0, 39.25]
    assert (s.summary.duplicate_timestamps, s.summary.duplicate_rows) == (1, 2)


def test_duplicates_that_arrive_out_of_order_merge_under_the_first_rows_text(tmp_path):
    s = read_series(series_csv(tmp_path, [("2024-01-09T14:01:00Z", 2), ("2024-01-09 14:00:00", 1),
                                          ("2024-01-09T14:00:00+00:00", 4)]))
    assert [r.timestamp_raw for r in s.rows] == ["2024-01-09 14:00:00", "2024-01-09T14:01:00Z"]
    assert values(s) == [5, 2]


def test_aggregate_flag_overrides_the_choice_made_from_the_values(tmp_path):
    ints = series_csv(tmp_path, [(0, 1), (60, 2), (60, 4), (120, 3)])
    averaged = read_series(ints, aggregate="mean")
    assert averaged.kind == "level" and values(averaged) == [1, 3, 3]
    floats = write_csv(tmp_path / "f.csv", ["timestamp,value", "0,0.5", "60,1.25", "60,0.25", "120,1"])
    summed = read_series(floats, aggregate="sum")
    assert summed.kind == "count" and values(summed) == [0.5, 1.5, 1]


def test_auto_treats_the_series_as_counts_only_when_every_value_is_a_non_negative_integer(tmp_path):
    assert read_series(series_csv(tmp_path, [(0, "1"), (60, "2.0"), (120, "0")])).kind == "count"
    assert read_series(series_csv(tmp_path, [(0, "1"), (60, "2.5"), (120, "0")])).kind == "level"
    # Negative readings (temperatures, returns) are a level series, never an error when reading.
    assert read_series(series_csv(tmp_path, [(0, "-3"), (60, "2"), (120, "0")])).kind == "level"


def test_negative_values_cannot_be_summed_as_counts(tmp_path):
    with pytest.raises(SeriesError, match=r"row 3: value '-2' is negative"):
        read_series(series_csv(tmp_path, [(0, 3), (60, -2)]), aggregate="sum")


def test_totals_are_merged_like_the_values(tmp_path):
    src = series_csv(tmp_path, [(0, 1, 10), (60, 2, 5), (60, 3, 7)], header="timestamp,value,total")
    assert [r.total for r in read_series(src).rows] == [10, 12]
    assert [r.value for r in read_series(src).rows] == [1, 5]


def test_with_a_total_column_the_values_are_volumes_even_when_they_are_not_integers(tmp_path):
    # The alerter's negative volume sums P(negative) over the bucket's events.
    src = series_csv(tmp_path, [(0, 1.4, 10), (60, 2.5, 5), (60, 3.25, 7)], header="timestamp,value,total")
    s = read_series(src)
    assert s.kind == "count" and s.has_total
    assert [(r.value, r.total) for r in s.rows] == [(1.4, 10), (5.75, 12)]
    assert "auto: a total column, so the values are volumes" in s.summary.lines()[0]
    with pytest.raises(SeriesError, match="total column makes the values volumes.*--aggregate mean does not apply"):
        read_series(src, aggregate="mean")
    negative = series_csv(tmp_path, [(0, 1.5, 10), (60, -0.5, 5)], header="timestamp,value,total")
    with pytest.raises(SeriesError, match="row 3: value '-0.5' is negative; with a total column the values are volumes"):
        read_series(negative)


def test_a_total_below_its_value_is_rejected_with_the_row(tmp_path):
    with pytest.raises(SeriesError, match=r"row 3: total '1' must be >= 0 and >= value '2'"):
        read_series(series_csv(tmp_path, [(0, 1, 5), (60, 2, 1)], header="timestamp,value,total"))


# -- gaps -----------------------------------------------------------------------------------------

def test_missing_buckets_of_a_sparse_count_series_are_filled_with_zero_and_marked(tmp_path):
    # The series reports a 0 itself (at 360), so a missing bucket means "nothing happened".
    s = read_series(series_csv(tmp_path, [(0, 4), (60, 5), (240, 6), (300, 7), (360, 0)]))
    assert timestamps(s) == [0, 60, 120, 180, 240, 300, 360]
    assert values(s) == [4, 5, 0, 0, 6, 7, 0]
    assert [r.filled for r in s.rows] == [False, False, True, True, False, False, False]
    assert [r.row for r in s.rows if r.filled] == [None, None]
    sm = s.summary
    assert (sm.gaps, sm.missing_intervals, sm.largest_gap_s, sm.zero_filled, sm.gaps_left) == (1, 2, 180, 2, 0)


@pytest.mark.parametrize("aggregate", ["auto", "sum"])
def test_gaps_in_a_count_series_that_never_reports_zero_are_left_as_gaps(tmp_path, aggregate):
    # Vehicles per 5 minutes: a road is never empty, so the missing rows are missing data; zeros
    # there would be alerts about nothing.
    s = read_series(series_csv(tmp_path, [(0, 12), (300, 15), (1200, 14), (1500, 11), (1800, 13)]),
                    aggregate=aggregate)
    assert s.kind == "count"
    assert timestamps(s) == [0, 300, 1200, 1500, 1800]
    assert not any(r.filled for r in s.rows)
    sm = s.summary
    assert (sm.gaps, sm.missing_intervals, sm.largest_gap_s, sm.zero_filled, sm.gaps_left) == (1, 2, 900, 0, 1)
    assert sm.lines()[1] == "fixed: 1 gap left (largest 15m)"


def test_gaps_in_a_level_series_are_left_as_gaps(tmp_path):
    s = read_series(series_csv(tmp_path, [(0, 12.5), (60, 13.0), (240, 12.75), (300, 14.0), (360, 13.5)]))
    assert timestamps(s) == [0, 60, 240, 300, 360]
    assert not any(r.filled for r in s.rows)
    sm = s.summary
    assert (sm.gaps, sm.missing_intervals, sm.largest_gap_s, sm.zero_filled, sm.gaps_left) == (1, 2, 180, 0, 1)


def test_count_gaps_longer_than_a_day_are_left_as_gaps(tmp_path):
    hour, day = 3600, 86_400
    ts = [0, hour, 2 * hour, 3 * hour, 5 * hour, 5 * hour + 2 * day, 5 * hour + 2 * day + hour]
    s = read_series(series_csv(tmp_path, list(zip(ts, [0, 2, 1, 3, 0, 2, 1]))))  # sparse: has zeros
    assert s.interval_s == hour
    assert [r.timestamp for r in s.rows if r.filled] == [4 * hour]  # the 2-hour gap only
    sm = s.summary
    assert (sm.gaps, sm.gaps_filled, sm.gaps_left, sm.largest_gap_left_s) == (2, 1, 1, 2 * day)


def test_zero_filled_buckets_have_a_zero_total_when_the_series_has_totals(tmp_path):
    src = series_csv(tmp_path, [(0, 1, 9), (60, 2, 8), (180, 3, 7), (240, 0, 2)], header="timestamp,value,total")
    filled = [r for r in read_series(src).rows if r.filled]
    assert [(r.timestamp, r.value, r.total) for r in filled] == [(120, 0, 0)]


@pytest.mark.parametrize(
    ("first", "second", "filled"),
    [
        ("2024-01-09T14:00:00Z", "2024-01-09T14:02:00Z", "2024-01-09T14:01:00Z"),
        ("2024-01-09 14:00:00", "2024-01-09 14:02:00", "2024-01-09 14:01:00"),
        ("2024-01-09T15:00:00+01:00", "2024-01-09T15:02:00+01:00", "2024-01-09T14:01:00+00:00"),
        ("1704808800", "1704808920", "1704808860"),
    ],
)
def test_filled_timestamps_are_written_in_utc_in_the_inputs_format(tmp_path, first, second, filled):
    # Two more rows a minute apart set the interval to 1 minute; the minute after `first` is missing.
    # The reported 0 makes this a sparse count series, whose gaps are filled.
    rows = [(first, 1), (second, 2)] + [(int(parse_timestamp(second)) + 60 * i, v) for i, v in ((1, 0), (2, 3))]
    s = read_series(series_csv(tmp_path, rows), aggregate="sum")
    assert [r.timestamp_raw for r in s.rows[:3]] == [first, filled, second]


# -- the summary ----------------------------------------------------------------------------------

def test_summary_says_what_was_fixed(tmp_path):
    rows = [(120, 1.5), (0, 1.0), (60, 2.0), (60, 3.0), (600, 2.5), (660, 1.0), (720, 1.0), (780, 1.0)]
    lines = read_series(series_csv(tmp_path, rows)).summary.lines()
    assert lines == [
        "series: 8 rows read; level series (auto: not all values are non-negative integers), "
        "duplicates averaged",
        "fixed: 3 out-of-order rows sorted, 1 duplicate timestamp merged (mean of 2 rows), "
        "1 gap left (largest 8m)",
    ]


def test_summary_of_a_count_series_reports_the_zero_filled_buckets(tmp_path):
    lines = read_series(series_csv(tmp_path, [(0, 1), (60, 1), (60, 2), (300, 1), (360, 0)])).summary.lines()
    assert lines[0].startswith("series: 5 rows read; count series (auto: all values are non-negative integers)")
    assert lines[1] == "fixed: 1 duplicate timestamp merged (sum of 2 rows), 1 gap zero-filled (3 buckets)"


def test_summary_of_a_tidy_series_says_nothing_was_fixed(tmp_path):
    lines = read_series(series_csv(tmp_path, [(0, 1), (60, 2), (120, 3)]), aggregate="mean").summary.lines()
    assert "(aggregate mean)" in lines[0]
    assert lines[1] == "fixed: nothing (in time order, no duplicate timestamps, no gaps)"


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["timestamp,value", "0,3", "60,x"], "row 3: value 'x' is not a number"),
        (["timestamp,value", "0,3", "60,"], "row 3: value is empty"),
        (["timestamp,value", "0,3", "60,nan"], "row 3: value 'nan' is not a finite number"),
        (["timestamp,value", "0,3", "60,inf"], "row 3: value 'inf' is not a finite number"),
        (["timestamp,value", "0,-Infinity"], "row 2: value '-Infinity' is not a finite number"),
        (["timestamp,value", "0,3", "", "yesterday,4"], "row 4: timestamp 'yesterday'"),
        (["timestamp,value"], "no data rows (only a header)"),
        (["time,value", "0,3"], "missing column(s) timestamp"),
    ],
)
def test_bad_values_are_rejected_naming_the_row(tmp_path, lines, message):
    src = write_csv(tmp_path / "bad.csv", lines)
    with pytest.raises(SeriesError) as e:
        read_series(src)
    assert message in str(e.value)


def test_an_empty_file_is_rejected_with_a_clear_message(tmp_path):
    src = tmp_path / "empty.csv"
    src.write_text("")
    with pytest.raises(SeriesError, match="empty file; need a header row timestamp,value"):
        read_series(src)


def test_a_byte_order_mark_before_the_header_is_accepted(tmp_path):
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbftimestamp,value\r\n0,1\r\n60,2\r\n")
    assert values(read_series(src)) == [1, 2]


def test_an_unknown_aggregate_is_a_programming_error():
    with pytest.raises(ValueError, match="aggregate must be one of auto, sum, mean"):
        clean_series([], aggregate="median")  # type: ignore[arg-type]
