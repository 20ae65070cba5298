"""Telemetry payload shapes → checked readings. Pure: no ORM, no web framework.

Accepted shapes (one device per payload):

- the project's bulk JSON: ``{"device_id"?: int, "readings": [{"metric", "time", "value"}, ...]}``
  with ``time`` an RFC 3339 string with offset or integer milliseconds since the epoch;
- ThingsBoard style: ``{"ts": ms, "values": {metric: value, ...}}`` and arrays of those;
- flat ``{metric: value, ...}``, timed by the server's clock;
- NDJSON (one bulk item or ThingsBoard object per line) and CSV (long: ``time,metric,value``;
  wide: ``time,<metric>,<metric>...``), for a device's offline buffer.

Two kinds of problems, kept apart on purpose:

- a malformed payload (wrong shape, a value that is not a finite number, an unknown metric, a
  time that cannot be parsed, lies more than five minutes in the future or before 2000) makes
  the whole payload invalid: ``PayloadError``, and nothing is stored;
- a well-formed reading the catalogue refuses as implausible (out of range under the "reject"
  policy) is *rejected* on its own, with its reason, while the rest are stored.

This module is longer than most (~600 lines) on purpose: every accepted shape feeds the one
``Collector`` and its private checks, and keeping the shapes beside them keeps "what is a valid
payload" in one place to read; the shapes themselves are short functions.
"""

from __future__ import annotations

import csv
import datetime as dt
import gc
import io
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from digital_village.iot import metrics

MIN_TIME_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_FUTURE_MS = 5 * 60 * 1000
MAX_LISTED_PROBLEMS = 100
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)

# Stable integer codes of the catalogue metrics, as stored. Never renumber; a new catalogue
# metric gets the next free code (a test checks that every catalogue metric has one).
METRIC_CODES: Mapping[str, int] = {
    "soil_moisture": 1,
    "soil_temperature": 2,
    "soil_ec": 3,
    "air_temperature": 4,
    "air_humidity": 5,
    "rainfall": 6,
    "illuminance": 7,
    "soil_ph": 8,
    "soil_n": 9,
    "soil_p": 10,
    "soil_k": 11,
    "battery": 12,
}
METRIC_NAMES: Mapping[int, str] = {code: name for name, code in METRIC_CODES.items()}

# name -> (code, minimum, maximum): the in-range test inlined on the hot path; anything outside
# goes through ``metrics.check_value`` so the catalogue alone decides reject or flag.
_RANGES: dict[str, tuple[int, float, float]] = {
    name: (METRIC_CODES[name], entry.minimum, entry.maximum)
    for name, entry in metrics.CATALOGUE.items()
}

Row = tuple[int, int, int, float, bool]
"""A checked reading, ready to store: (device id, metric code, time in ms, value, flagged)."""


@dataclass(frozen=True)
class Problem:
    """What is wrong with one item of a payload, and where it is."""

    where: str
    reason: str
    metric: str | None = None
    time: str | None = None

    def as_dict(self) -> dict[str, str]:
        shown = {"item": self.where, "reason": self.reason}
        if self.metric is not None:
            shown["metric"] = self.metric
        if self.time is not None:
            shown["time"] = self.time
        return shown


class PayloadError(ValueError):
    """The payload is malformed; ``problems`` lists the first items found wrong."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems[:MAX_LISTED_PROBLEMS]
        self.total = total if total is not None else len(problems)
        first = problems[0]
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        super().__init__(f"{first.where}: {first.reason}{more}")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is parsed and checked.

    A batch makes two or three objects per reading, none of them in a reference cycle, so
    reference counting frees them all; but their sheer number sets off collections that walk
    every object of the process, which cost more than the parsing (measured: 4.5 µs against
    1.8 µs a reading in a process holding 300 k objects).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ms_to_rfc3339(time_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds (``2026-05-01T08:00:00.000Z``)."""
    moment = EPOCH + dt.timedelta(milliseconds=time_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def datetime_to_ms(moment: dt.datetime) -> int:
    """An aware datetime as whole milliseconds since the epoch (sub-millisecond part dropped)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a time must carry a UTC offset")
    return (moment - EPOCH) // _ONE_MS


def parse_time(value: object) -> int:
    """Integer epoch milliseconds, or an RFC 3339 string with offset → epoch milliseconds.

    Raises ValueError naming what is wrong. Range checks are the caller's.
    """
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"time {value!r} is not an RFC 3339 date-time") from None
        if moment.tzinfo is None:
            raise ValueError(f"time {value!r} has no UTC offset (add Z or +08:00)")
        return (moment - EPOCH) // _ONE_MS
    raise ValueError(
        f"time {value!r} must be an RFC 3339 string or integer milliseconds since 1970"
    )


@dataclass
class Checked:
    """Readings that passed the payload checks, and the ones the catalogue refused."""

    rows: list[Row] = field(default_factory=list)
    where: list[int | str] = field(default_factory=list)  # each row's place in the payload
    flagged: int = 0
    rejected: list[Problem] = field(default_factory=list)
    device_id: int | None = None  # the device the payload names, if it names one
    ignored: list[str] = field(default_factory=list)  # keys that are no metric (LoRaWAN objects)


class Collector:
    """Checks readings one by one; collects rows, item rejections and payload problems."""

    def __init__(
        self,
        now_ms: int,
        *,
        device_id: int = 0,
        label: Callable[[int | str], str] = str,
        policies: Mapping[str, metrics.OutOfRangePolicy] | None = None,
    ) -> None:
        self.now_ms = now_ms
        self.device_id = device_id
        self.latest_ms = now_ms + MAX_FUTURE_MS
        self.label = label
        self.policies = policies
        self.checked = Checked()
        self.problems: list[Problem] = []
        self.problem_count = 0

    def problem(self, where: int | str, reason: str, metric: str | None = None) -> None:
        """Record a payload problem (the payload will be refused as a whole)."""
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(Problem(self.label(where), reason, metric))

    def add(self, where: int | str, metric: object, time: object, value: object) -> None:
        """Check one reading: metric name, time (raw), value (raw)."""
        if type(time) is not int:
            try:
                time = parse_time(time)
            except ValueError as error:
                self.problem(where, str(error))
                return
        assert isinstance(time, int)
        if time < MIN_TIME_MS:
            self.problem(where, f"time {ms_to_rfc3339(time)} is before 2000-01-01")
            return
        if time > self.latest_ms:
            self.problem(
                where,
                f"time {ms_to_rfc3339(time)} is more than 5 minutes in the future "
                f"(server time {ms_to_rfc3339(self.now_ms)})",
            )
            return
        entry = _RANGES.get(metric) if isinstance(metric, str) else None
        if entry is None:
            if not isinstance(metric, str):
                self.problem(where, f"metric {metric!r} must be a string")
            else:
                self.problem(where, str(metrics.UnknownMetricError(metric)), metric)
            return
        kind = type(value)
        # In range is accepted under any policy; only values outside need the catalogue's word.
        if (kind is float or kind is int) and entry[1] <= value <= entry[2]:  # type: ignore[operator]
            self.checked.rows.append((self.device_id, entry[0], time, float(value), False))  # type: ignore[arg-type]
            self.checked.where.append(where)
            return
        self._slow(where, cast(str, metric), entry[0], time, value)

    def _slow(self, where: int | str, metric: str, code: int, time: int, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(where, f"{metric} value {value!r} is not a number", metric)
            return
        if not math.isfinite(value):
            self.problem(where, f"{metric} value {value!r} is not a finite number", metric)
            return
        check = metrics.check_value(metric, value, policies=self.policies)
        if check.verdict is metrics.Verdict.REJECTED:
            self.checked.rejected.append(
                Problem(self.label(where), check.reason or "rejected", metric, ms_to_rfc3339(time))
            )
            return
        flagged = check.verdict is metrics.Verdict.FLAGGED
        self.checked.flagged += flagged
        self.checked.rows.append((self.device_id, code, time, float(value), flagged))
        self.checked.where.append(where)

    def mark(self) -> tuple[int, int, int, int]:
        """A point to roll back to: counts of rows, rejections, problems and flags."""
        checked = self.checked
        return (len(checked.rows), len(checked.rejected), self.problem_count, checked.flagged)

    def rollback(self, mark: tuple[int, int, int, int]) -> list[Problem]:
        """Drop everything added since ``mark``; return the payload problems found since."""
        rows, rejected, problems, flagged = mark
        checked = self.checked
        found = self.problems[problems:] if problems < len(self.problems) else []
        del checked.rows[rows:], checked.where[rows:], checked.rejected[rejected:]
        del self.problems[problems:]
        self.problem_count = problems
        checked.flagged = flagged
        return found

    def finish(self) -> Checked:
        """The checked readings; PayloadError if any payload problem was found."""
        if self.problem_count:
            raise PayloadError(self.problems, self.problem_count)
        return self.checked


def _indexed(prefix: str) -> Callable[[int | str], str]:
    def label(where: int | str) -> str:
        return f"{prefix}[{where}]" if isinstance(where, int) else where

    return label


def _fail(where: str, reason: str) -> PayloadError:
    return PayloadError([Problem(where, reason)])


def parse_json_bytes(body: bytes) -> Any:
    """Parse a JSON body; PayloadError naming the position when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _fail(
            "body", f"not valid JSON ({error}); NaN and Infinity are not JSON numbers"
        ) from None


def check_json(
    payload: Any,
    *,
    now_ms: int,
    device_id: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None = None,
) -> Checked:
    """Check a parsed JSON payload of any accepted shape."""
    if isinstance(payload, dict):
        if "readings" in payload:
            return _check_bulk(payload, now_ms, device_id, policies)
        if "ts" in payload or "values" in payload:
            collector = Collector(now_ms, device_id=device_id, policies=policies)
            _add_thingsboard(collector, payload, "")
            return collector.finish()
        return _check_flat(payload, now_ms, device_id, policies)
    if isinstance(payload, list):
        if not payload:
            raise _fail("body", "an empty array holds no readings")
        collector = Collector(now_ms, device_id=device_id, policies=policies)
        for index, item in enumerate(payload):
            _add_thingsboard(collector, item, f"[{index}]")
        return collector.finish()
    raise _fail(
        "body",
        'expected {"readings": [...]}, {"ts": ..., "values": {...}}, an array of those, '
        "or {metric: value}",
    )


def add_message(collector: Collector, payload: Any) -> int | None:
    """Add one small JSON message of any accepted shape; return the device it names, if any.

    Problems go to the collector (see ``Collector.mark`` / ``rollback`` to refuse one message of
    a batch alone). Used by the MQTT worker, whose messages carry a reading or a few.
    """
    if isinstance(payload, dict):
        if "readings" in payload:
            claimed = payload.get("device_id")
            items = payload["readings"]
            unknown = set(payload) - {"readings", "device_id"}
            if unknown or not isinstance(items, list) or not items:
                collector.problem("body", 'expected {"readings": [{"metric", "time", "value"}]}')
                return None
            for index, item in enumerate(items):
                if isinstance(item, dict) and set(item) == {"metric", "time", "value"}:
                    collector.add(f"readings[{index}]", item["metric"], item["time"], item["value"])
                else:
                    collector.problem(f"readings[{index}]", "expected metric, time and value")
            return claimed if type(claimed) is int else None
        if "ts" in payload or "values" in payload:
            _add_thingsboard(collector, payload, "")
            return None
        if not payload:
            collector.problem("body", "an empty object holds no readings")
        for metric, value in payload.items():
            collector.add(metric, metric, collector.now_ms, value)
        return None
    if isinstance(payload, list) and payload:
        for index, item in enumerate(payload):
            _add_thingsboard(collector, item, f"[{index}]")
        return None
    collector.problem(
        "body", 'expected {"ts": ..., "values": {...}}, {"readings": [...]} or an array'
    )
    return None


def _check_bulk(
    payload: dict[str, Any],
    now_ms: int,
    device_id_for: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None,
) -> Checked:
    unknown = set(payload) - {"readings", "device_id"}
    if unknown:
        raise _fail("body", f"unknown field(s) {', '.join(sorted(unknown))}")
    device_id = payload.get("device_id")
    if device_id is not None and type(device_id) is not int:
        raise _fail("device_id", f"device_id {device_id!r} must be an integer")
    items = payload["readings"]
    if not isinstance(items, list):
        raise _fail("readings", "readings must be an array")
    if not items:
        raise _fail("readings", "readings is empty")
    collector = Collector(
        now_ms, device_id=device_id_for, label=_indexed("readings"), policies=policies
    )
    add = collector.add
    append = collector.checked.rows.append
    place = collector.checked.where.append
    ranges = _RANGES
    parse_iso = dt.datetime.fromisoformat
    latest = collector.latest_ms
    last_text: str | None = None
    last_ms = 0
    for index, item in enumerate(items):
        # The hot path, inlined: a plain three-key object, a known metric, an RFC 3339 time with
        # offset (or integer ms) inside the window, a number inside the plausible range. Anything
        # else goes through ``Collector.add``, which decides and explains.
        if type(item) is not dict or len(item) != 3:
            _bulk_item_problem(collector, index, item)
            continue
        try:
            metric, time, value = item["metric"], item["time"], item["value"]
        except KeyError:
            _bulk_item_problem(collector, index, item)
            continue
        if type(time) is str:
            # A device samples several metrics at once: the same time string comes in a row.
            if time == last_text:
                time = last_ms
            else:
                try:
                    moment = parse_iso(time)
                except ValueError:
                    add(index, metric, time, value)
                    continue
                if moment.tzinfo is None:
                    add(index, metric, time, value)
                    continue
                last_text, last_ms = time, (moment - EPOCH) // _ONE_MS
                time = last_ms
        entry = ranges.get(metric) if type(metric) is str else None
        kind = type(value)
        if (
            entry is not None
            and type(time) is int
            and MIN_TIME_MS <= time <= latest
            and (kind is float or kind is int)
            and entry[1] <= value <= entry[2]
        ):
            append((device_id_for, entry[0], time, value if kind is float else float(value), False))
            place(index)
        else:
            add(index, metric, time, value)
    checked = collector.finish()
    checked.device_id = device_id
    return checked


def _bulk_item_problem(collector: Collector, index: int, item: object) -> None:
    if not isinstance(item, dict):
        collector.problem(index, 'each reading must be an object {"metric", "time", "value"}')
        return
    missing = [key for key in ("metric", "time", "value") if key not in item]
    extra = sorted(set(item) - {"metric", "time", "value"})
    if missing:
        collector.problem(index, f"missing {', '.join(missing)}")
    elif extra:
        collector.problem(index, f"unknown field(s) {', '.join(extra)}")
    else:  # pragma: no cover - a three-key object never reaches here
        collector.add(index, item["metric"], item["time"], item["value"])


def _add_thingsboard(collector: Collector, item: object, where: str) -> None:
    if not isinstance(item, dict) or "values" not in item:
        collector.problem(where or "body", 'expected {"ts": <ms>, "values": {metric: value}}')
        return
    unknown = set(item) - {"ts", "values"}
    if unknown:
        collector.problem(where or "body", f"unknown field(s) {', '.join(sorted(unknown))}")
        return
    values = item["values"]
    if not isinstance(values, dict) or not values:
        collector.problem(f"{where}.values", "values must be a non-empty object")
        return
    if "ts" in item:
        ts = item["ts"]
        if type(ts) is not int:
            collector.problem(f"{where}.ts", f"ts {ts!r} must be integer milliseconds since 1970")
            return
    else:
        ts = collector.now_ms
    prefix = f"{where}.values." if where else "values."
    for metric, value in values.items():
        collector.add(prefix + metric, metric, ts, value)


def _check_flat(
    payload: dict[str, Any],
    now_ms: int,
    device_id: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None,
) -> Checked:
    if not payload:
        raise _fail("body", "an empty object holds no readings")
    collector = Collector(now_ms, device_id=device_id, policies=policies)
    for metric, value in payload.items():
        collector.add(metric, metric, now_ms, value)
    return collector.finish()


def check_ndjson(
    body: bytes,
    *,
    now_ms: int,
    device_id: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None = None,
) -> Checked:
    """Check newline-delimited JSON: one bulk reading or ThingsBoard object per line."""
    collector = Collector(now_ms, device_id=device_id, policies=policies)
    seen = 0
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        seen += 1
        where = f"line {number}"
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            collector.problem(where, f"not valid JSON ({error})")
            continue
        if isinstance(item, dict) and "metric" in item:
            extra = sorted(set(item) - {"metric", "time", "value"})
            missing = [key for key in ("time", "value") if key not in item]
            if missing or extra:
                what = f"missing {', '.join(missing)}" if missing else f"unknown {extra}"
                collector.problem(where, what)
                continue
            collector.add(where, item["metric"], item["time"], item["value"])
        else:
            _add_thingsboard(collector, item, where)
    if not seen and not collector.problem_count:
        raise _fail("body", "no readings: the NDJSON body is empty")
    return collector.finish()


def check_csv(
    body: bytes,
    *,
    now_ms: int,
    device_id: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None = None,
) -> Checked:
    """Check CSV with a header: long (time,metric,value) or wide (time,<metric>,...)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _fail("body", f"CSV must be UTF-8 ({error})") from None
    # newline="": the csv module reads quoted newlines and \r, \r\n or \n line ends itself.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _csv_row(reader)
    if header is None:
        raise _fail("body", "no readings: the CSV body is empty")
    columns = [name.strip() for name in header]
    time_names = [name for name in columns if name in ("time", "ts")]
    if len(time_names) != 1:
        raise _fail("line 1", "the header needs exactly one time column named time or ts")
    time_at = columns.index(time_names[0])
    long = "metric" in columns and "value" in columns
    if long:
        extra = sorted(set(columns) - {time_names[0], "metric", "value"})
        if extra:
            raise _fail("line 1", f"unknown column(s) {', '.join(extra)} next to metric,value")
        metric_at, value_at = columns.index("metric"), columns.index("value")
    else:
        for name in columns:
            if name != time_names[0] and name not in _RANGES:
                raise _fail("line 1", f"column {name!r}: {metrics.UnknownMetricError(name)}")
    collector = Collector(now_ms, device_id=device_id, policies=policies)
    seen = 0
    while (cells := _csv_row(reader)) is not None:
        number = reader.line_num
        if not cells or not any(cell.strip() for cell in cells):
            continue
        seen += 1
        where = f"line {number}"
        if len(cells) != len(columns):
            collector.problem(where, f"{len(cells)} cells, the header has {len(columns)}")
            continue
        time = _csv_time(cells[time_at].strip())
        if long:
            collector.add(where, cells[metric_at].strip(), time, _csv_number(cells[value_at]))
            continue
        for at, name in enumerate(columns):
            cell = cells[at].strip()
            if at != time_at and cell:
                collector.add(f"{where} {name}", name, time, _csv_number(cell))
    if not seen and not collector.problem_count:
        raise _fail("body", "no readings: the CSV has a header but no rows")
    return collector.finish()


def _csv_row(reader: Any) -> list[str] | None:
    """The next row, None at the end; what the csv module cannot read is refused whole, naming
    the line (a field over its 131,072-character limit, a NUL, an unterminated quote)."""
    try:
        row: list[str] = next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        raise _fail(f"line {reader.line_num}", f"not readable as CSV: {error}") from None
    return row


def _csv_time(cell: str) -> int | str:
    return int(cell) if cell.isascii() and cell.isdigit() else cell


def _csv_number(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell.strip()
