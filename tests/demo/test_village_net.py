"""The demo's generated season: plausible, regular, the same every time."""

from __future__ import annotations

import datetime as dt

from digital_village.demo import village_net
from digital_village.iot import metrics, readings, shapes


def test_a_generated_season_is_plausible_and_repeatable() -> None:
    start = dt.datetime(2025, 9, 20, 10, 30, tzinfo=readings.CHINA_TIME)
    end = start + dt.timedelta(days=365)
    rows = village_net.generate(device_id=9, model="LSE01", start=start, end=end, seed=9)
    assert rows == village_net.generate(device_id=9, model="LSE01", start=start, end=end, seed=9)
    names = {code: name for name, code in shapes.METRIC_CODES.items()}
    by_metric: dict[str, list[float]] = {}
    for device_id, metric_id, _time_ms, value, flagged in rows:
        assert device_id == 9 and not flagged
        by_metric.setdefault(names[metric_id], []).append(value)
    assert set(by_metric) == {"soil_moisture", "soil_temperature", "soil_ec", "battery"}
    for name, values in by_metric.items():
        entry = metrics.CATALOGUE[name]
        assert entry.minimum <= min(values) and max(values) <= entry.maximum, name
    moisture = by_metric["soil_moisture"]
    assert len(moisture) == 365 * 48
    assert min(moisture) < 15 < 40 < max(moisture)  # dry spells and rain events
    temperature = by_metric["soil_temperature"]
    assert min(temperature) < 8 and max(temperature) > 26  # winter and summer
