"""The bulk insert of readings: counts of new rows, rows stored as given, days marked pending."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from digital_village.db import Database
from digital_village.iot import readings
from digital_village.iot.models import Reading
from tests.iot.conftest import Farm, recent


@pytest.mark.parametrize("count", [1, 99, 100, 101, 257])
def test_insert_counts_new_rows_and_stores_them_as_given(
    db: Database, farm: Farm, count: int
) -> None:
    # Several rows a statement on SQLite: whole statements, a remainder, and keys already stored
    # or repeated inside the batch, which are not new.
    base = int(recent(30).timestamp() * 1000)
    rows = [
        (farm.device_id, 1 + n % 3, base + n * 1000, 20.0 + n / 8, n % 7 == 0) for n in range(count)
    ]
    half = count // 2
    with db.transaction() as session:
        assert readings.insert_many(session, rows[:half]) == half
    with db.transaction() as session:
        assert readings.insert_many(session, rows[::-1] + rows[:3]) == count - half
    with db.session() as session:
        stored = session.execute(
            select(
                Reading.device_id,
                Reading.metric_id,
                Reading.time_ms,
                Reading.value,
                Reading.flagged,
            ).where(Reading.device_id == farm.device_id)
        ).all()
    assert sorted(tuple(row) for row in stored) == sorted(rows)


def test_of_two_rows_with_one_key_in_a_batch_the_first_is_stored(db: Database, farm: Farm) -> None:
    at = int(recent(30).timestamp() * 1000)
    rows = [(farm.device_id, 2, at + n * 1000, 10.0 + n, False) for n in range(150)]
    rows += [(farm.device_id, 1, at, 1.0, False), (farm.device_id, 1, at, 2.0, True)]
    rows += [(farm.device_id, 2, at + 5000, 99.0, False)]
    with db.transaction() as session:
        assert readings.insert_many(session, rows) == 151
    with db.session() as session:
        first = readings.get(session, device_id=farm.device_id, metric_id=1, time_ms=at)
        fifth = readings.get(session, device_id=farm.device_id, metric_id=2, time_ms=at + 5000)
    assert first is not None and (first.value, first.flagged) == (1.0, False)
    assert fifth is not None and fifth.value == 15.0


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=3),
            st.integers(min_value=20_000 * readings.DAY_MS, max_value=20_004 * readings.DAY_MS),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_days_of_are_the_china_days_each_device_has_readings_on(
    keys: list[tuple[int, int]],
) -> None:
    rows = [(device, 1, time_ms, 1.0, False) for device, time_ms in keys]
    expected = {(device, readings.local_day(time_ms)) for device, time_ms in keys}
    assert readings.days_of(rows) == expected


def test_days_of_one_device_across_midnight() -> None:
    midnight = readings.day_bounds_ms(dt.date(2026, 11, 28))[0]
    rows = [(5, 1, midnight - 1000, 1.0, False), (5, 2, midnight + 1000, 1.0, False)]
    assert readings.days_of(rows) == {(5, dt.date(2026, 11, 27)), (5, dt.date(2026, 11, 28))}
