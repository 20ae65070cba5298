"""Payload shapes, pure: times, the inlined bulk path against the general one, CSV and NDJSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.iot import shapes
from digital_village.iot.shapes import PayloadError

NOW = 1_795_000_000_000  # 2026-11-18
YEAR_2000 = shapes.MIN_TIME_MS


@given(st.integers(min_value=YEAR_2000, max_value=4_102_444_800_000))
def test_rfc3339_round_trip_to_the_millisecond(time_ms: int) -> None:
    assert shapes.parse_time(shapes.ms_to_rfc3339(time_ms)) == time_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01T08:00:00Z", 1_777_622_400_000),
        ("2026-05-01T16:00:00+08:00", 1_777_622_400_000),
        ("2026-05-01T08:00:00.123456Z", 1_777_622_400_123),  # sub-millisecond part dropped
        ("2026-05-01 08:00:00.5+00:00", 1_777_622_400_500),
        (1_777_622_400_000, 1_777_622_400_000),
    ],
)
def test_time_forms(text: Any, expected: int) -> None:
    assert shapes.parse_time(text) == expected


@pytest.mark.parametrize("bad", ["2026-05-01T08:00:00", "2026-05-01", "soon", 1.5e12, None, True])
def test_times_that_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        shapes.parse_time(bad)


reading = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(["soil_moisture", "soil_temperature", "battery", "soil_ph", "x"]),
        "time": st.one_of(
            st.integers(min_value=YEAR_2000 - 10, max_value=NOW + 600_000),
            st.integers(min_value=YEAR_2000, max_value=NOW).map(shapes.ms_to_rfc3339),
            st.just("2026-01-01T00:00:00"),
        ),
        "value": st.one_of(
            st.floats(min_value=-50, max_value=200, allow_nan=False),
            st.integers(min_value=-5, max_value=120),
            st.just("12"),
            st.none(),
        ),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(reading, min_size=1, max_size=30))
def test_the_inlined_bulk_path_decides_exactly_as_the_general_one(
    items: list[dict[str, Any]],
) -> None:
    reference = shapes.Collector(NOW, device_id=7, label=lambda w: f"readings[{w}]")
    for index, item in enumerate(items):
        reference.add(index, item["metric"], item["time"], item["value"])
    try:
        expected: Any = reference.finish()
    except PayloadError as error:
        expected = error
    try:
        got: Any = shapes.check_json({"readings": items}, now_ms=NOW, device_id=7)
    except PayloadError as error:
        got = error
    assert type(got) is type(expected)
    if isinstance(expected, PayloadError):
        assert str(got) == str(expected)
        assert got.problems == expected.problems
    else:
        assert got.rows == expected.rows
        assert got.where == expected.where
        assert got.rejected == expected.rejected
        assert got.flagged == expected.flagged


def test_rollback_forgets_one_message_of_a_batch() -> None:
    collector = shapes.Collector(NOW, device_id=1)
    shapes.add_message(collector, {"ts": NOW - 1000, "values": {"soil_moisture": 20}})
    mark = collector.mark()
    shapes.add_message(
        collector, {"ts": NOW - 900, "values": {"soil_moisture": "wet", "battery": 3.6}}
    )
    assert collector.problem_count == 1
    problems = collector.rollback(mark)
    assert [p.reason for p in problems] == ["soil_moisture value 'wet' is not a number"]
    checked = collector.finish()
    assert [row[1:3] for row in checked.rows] == [(1, NOW - 1000)]


def test_csv_edge_cases() -> None:
    bom = "\ufefftime,soil_moisture\n2026-05-01T08:00:00Z,21\n\n".encode()
    assert len(shapes.check_csv(bom, now_ms=NOW, device_id=1).rows) == 1
    with pytest.raises(PayloadError, match="2 cells, the header has 3"):
        shapes.check_csv(
            b"time,metric,value\n2026-05-01T08:00:00Z,battery\n", now_ms=NOW, device_id=1
        )
    with pytest.raises(PayloadError, match="one time column"):
        shapes.check_csv(b"when,battery\n1,2\n", now_ms=NOW, device_id=1)
    with pytest.raises(PayloadError, match="no rows"):
        shapes.check_csv(b"time,battery\n", now_ms=NOW, device_id=1)
    with pytest.raises(PayloadError, match="UTF-8"):
        shapes.check_csv(b"time,battery\n\xff\xfe,1\n", now_ms=NOW, device_id=1)


def test_ndjson_names_the_bad_line() -> None:
    body = b'{"metric": "battery", "time": 1777622400000, "value": 3.6}\n{"metric": "battery"\n'
    with pytest.raises(PayloadError, match="line 2: not valid JSON"):
        shapes.check_ndjson(body, now_ms=NOW, device_id=1)
    with pytest.raises(PayloadError, match="empty"):
        shapes.check_ndjson(b"\n\n", now_ms=NOW, device_id=1)


def test_the_future_limit_is_five_minutes_of_server_time() -> None:
    at_limit = {"readings": [{"metric": "battery", "time": NOW + 300_000, "value": 3.6}]}
    assert len(shapes.check_json(at_limit, now_ms=NOW, device_id=1).rows) == 1
    beyond = {"readings": [{"metric": "battery", "time": NOW + 300_001, "value": 3.6}]}
    with pytest.raises(PayloadError, match="more than 5 minutes in the future"):
        shapes.check_json(beyond, now_ms=NOW, device_id=1)
    assert shapes.ms_to_rfc3339(YEAR_2000) == "2000-01-01T00:00:00.000Z"
    assert dt.datetime.fromisoformat(shapes.ms_to_rfc3339(NOW)).tzinfo is not None


def test_day_marks_count_only_once_their_transaction_committed() -> None:
    from digital_village.iot.readings import DayMarks

    today, earlier = dt.date(2026, 5, 2), dt.date(2026, 5, 1)
    marks = DayMarks()
    pairs = {(1, today), (1, earlier)}
    assert marks.unmarked(pairs, today) == pairs
    marks.stage(pairs, today)
    marks.rolled_back()
    assert marks.unmarked(pairs, today) == pairs  # the marks were lost with the transaction
    marks.stage(pairs, today)
    marks.committed()
    # Today's mark stands; an earlier day is always marked again (it may have been sealed).
    assert marks.unmarked(pairs, today) == {(1, earlier)}
    assert marks.unmarked(pairs, dt.date(2026, 5, 3)) == pairs  # a new day starts afresh
