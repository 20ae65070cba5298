"""The MQTT ingest worker: QoS 1 telemetry in, acknowledged only after it is committed.

Devices publish to ``dv/v1/devices/<device id>/telemetry`` any JSON shape ``POST
/api/v1/telemetry`` takes. Workers subscribe through a shared subscription
(``$share/<group>/dv/v1/devices/+/telemetry``) so several split the stream.

Settings measured on this kind of machine (docs/BENCHMARKS.md, FIELD-NOTES): MQTT v5 with
``ReceiveMaximum`` 65535 so the broker keeps enough messages in flight while a group commit
runs; ``manual_ack`` and a PUBACK per message only after the transaction that stored it has
committed, so a crash loses nothing (the broker redelivers what was not acknowledged, and
idempotent ingest turns the redelivery into duplicates); TCP_NODELAY on the socket. The
session is persistent (stable client id, ``clean_start`` false, a session expiry), so messages
in flight when a worker dies come back when it reconnects.

Who sent a message:

- ``auth="token"`` (default): the JSON object carries the device's bearer token in ``"token"``;
  it must be a live device token of the device named by the topic;
- ``auth="broker"``: the broker authenticated the device and its ACL lets each device publish
  only to its own topic (``deploy/mosquitto.conf``); the topic names the device.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError

from digital_village.auth import service as auth
from digital_village.auth.models import Role
from digital_village.db import Database
from digital_village.errors import DomainError
from digital_village.iot import ingest, metrics, readings, shapes
from digital_village.iot.models import Device

log = logging.getLogger("digital_village.iot.mqtt")

TOPIC_FILTER = "dv/v1/devices/+/telemetry"
_TOPIC_PREFIX = "dv/v1/devices/"
_TOPIC_SUFFIX = "/telemetry"
RECEIVE_MAXIMUM = 65535
CACHE_SECONDS = 30.0


@dataclass
class WorkerOptions:
    """How the worker connects and batches."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = field(default_factory=lambda: f"dv-ingest-{socket.gethostname()}")
    group: str | None = "dv-ingest"
    username: str | None = None
    password: str | None = None
    auth: str = "token"  # or "broker"
    # "5" (default): Receive Maximum 65535 works with any broker. "3.1.1": paho parses no
    # properties per message (about 40 % less CPU here) but needs the broker's
    # max_inflight_messages raised, as deploy/mosquitto.conf does.
    protocol: str = "5"
    batch_ms: float = 20.0
    max_batch: int = 10_000
    session_expiry: int = 3600
    keepalive: int = 30
    report_errors: bool = True

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{TOPIC_FILTER}" if self.group else TOPIC_FILTER


@dataclass
class WorkerStats:
    """Counters since the worker started."""

    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    invalid: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Incoming(NamedTuple):
    """What the worker keeps of a message until it is stored: not paho's message object, whose
    MQTT 5 properties cost kilobytes each when tens of thousands are in flight."""

    topic: str
    payload: bytes | bytearray
    mid: int
    qos: int
    generation: int


def device_of_topic(topic: str) -> int | None:
    """The device id in ``dv/v1/devices/<id>/telemetry``, or None."""
    if not (topic.startswith(_TOPIC_PREFIX) and topic.endswith(_TOPIC_SUFFIX)):
        return None
    middle = topic[len(_TOPIC_PREFIX) : -len(_TOPIC_SUFFIX)]
    return int(middle) if middle.isascii() and middle.isdigit() and len(middle) < 12 else None


def _nodelay(_client: paho.Client, _userdata: Any, sock: Any) -> None:
    # Small PUBACKs must not wait for Nagle's algorithm.
    with contextlib.suppress(OSError, AttributeError):  # e.g. a websocket transport
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class IngestWorker:
    """Subscribes, group-commits, then acknowledges."""

    def __init__(self, database: Database, options: WorkerOptions) -> None:
        self.database = database
        self.options = options
        self.stats = WorkerStats()
        self._incoming: queue.SimpleQueue[_Incoming] = queue.SimpleQueue()
        self._generation = 0
        self._connected = threading.Event()
        self._tokens: dict[str, tuple[int, float]] = {}
        self._contexts: dict[int, tuple[ingest.DeviceContext, float]] = {}
        self._topics: dict[str, int] = {}
        self._marks = readings.DayMarks()
        self._policy_cache: tuple[dict[str, metrics.OutOfRangePolicy] | None, float] | None = None
        self.client = self._make_client()

    # -- connection --------------------------------------------------------------------------

    @property
    def v5(self) -> bool:
        return self.options.protocol == "5"

    def _make_client(self) -> paho.Client:
        if self.v5:
            client = paho.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=self.options.client_id,
                protocol=paho.MQTTv5,
                manual_ack=True,
            )
        else:
            client = paho.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=self.options.client_id,
                protocol=paho.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if self.options.username is not None:
            client.username_pw_set(self.options.username, self.options.password)
        client.on_socket_open = _nodelay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(
        self, client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        self._generation += 1
        if self.v5:
            client.subscribe(self.options.subscription, options=SubscribeOptions(qos=1))
        else:
            client.subscribe(self.options.subscription, qos=1)
        log.info(
            "connected to %s:%s as %s, subscribed to %s (session present: %s)",
            self.options.host,
            self.options.port,
            self.options.client_id,
            self.options.subscription,
            getattr(flags, "session_present", None),
        )

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        if any(getattr(reason, "is_failure", False) for reason in reasons):
            log.error(
                "the broker refused the subscription %s: %s", self.options.subscription, reasons
            )
            return
        self._connected.set()  # subscribed: from now on nothing published is missed

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        log.warning("MQTT disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._incoming.put(
            _Incoming(message.topic, message.payload, message.mid, message.qos, self._generation)
        )

    def connect(self, timeout: float = 10.0) -> None:
        """Connect (persistent session, ReceiveMaximum 65535) and start the network thread."""
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            properties.SessionExpiryInterval = self.options.session_expiry
            self.client.connect(
                self.options.host,
                self.options.port,
                keepalive=self.options.keepalive,
                clean_start=False,
                properties=properties,
            )
        else:
            # v3.1.1 has no Receive Maximum: the broker's max_inflight_messages bounds what is
            # in flight (deploy/mosquitto.conf raises it from the default 20).
            self.client.connect(
                self.options.host, self.options.port, keepalive=self.options.keepalive
            )
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.client.loop_stop()
            raise ConnectionError(
                f"the MQTT broker at {self.options.host}:{self.options.port} did not accept "
                f"the connection and the subscription to {self.options.subscription}"
            )

    def close(self) -> None:
        """Disconnect cleanly (unacknowledged messages stay with the broker's session)."""
        self.client.disconnect()
        self.client.loop_stop()

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        on_batch: Callable[[WorkerStats], None] | None = None,
    ) -> WorkerStats:
        """Take batches until ``stop`` is set; each is committed, then acknowledged."""
        while not stop.is_set():
            batch = self._next_batch(stop)
            if not batch:
                continue
            self._store_with_retry(batch, stop)
            if on_batch is not None:
                on_batch(self.stats)
        return self.stats

    def _next_batch(self, stop: threading.Event) -> list[_Incoming]:
        """Wait for a message, give the stream the rest of the window, take what has come.

        Sleeping through the window (instead of waking per message) leaves the network thread
        the interpreter to itself while it parses the stream.
        """
        try:
            first = self._incoming.get(timeout=0.2)
        except queue.Empty:
            return []
        if self._incoming.qsize() < self.options.max_batch:
            time.sleep(self.options.batch_ms / 1000)
        batch = [first]
        take = self._incoming.get_nowait
        with contextlib.suppress(queue.Empty):
            while len(batch) < self.options.max_batch:
                batch.append(take())
        return batch

    def _store_with_retry(self, batch: list[_Incoming], stop: threading.Event) -> None:
        delay = 0.5
        while True:
            try:
                outcomes = self.process(batch)
                self._marks.committed()
            except (DBAPIError, DomainError) as error:
                self._marks.rolled_back()
                # Nothing was acknowledged: keep the batch and try again; if the worker dies
                # meanwhile, the broker redelivers it.
                log.error("storing a batch of %d failed (%s); retrying", len(batch), error)
                if stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                continue
            break
        generation = self._generation
        for incoming in batch:
            # A message from an earlier connection has a packet id of that session; the broker
            # sends it again on this one, and it is acknowledged then.
            if incoming.generation == generation and incoming.qos > 0:
                self.client.ack(incoming.mid, incoming.qos)
        if self.options.report_errors:
            for topic, report in outcomes:
                self.client.publish(topic, orjson.dumps(report), qos=0)

    # -- one batch ---------------------------------------------------------------------------

    def process(self, batch: list[_Incoming]) -> list[tuple[str, dict[str, Any]]]:
        """Check and store a batch in one transaction; return the error reports to publish.

        One collector per device gathers the batch's readings; a bad message is rolled back
        out of it and refused alone (acknowledged, reported on ``<topic>/errors``, logged).
        """
        now_ms = ingest.now_ms()
        clock = time.monotonic()
        reports: list[tuple[str, dict[str, Any]]] = []
        per_device: dict[int, tuple[ingest.DeviceContext, shapes.Collector]] = {}
        with self.database.transaction(write=True) as session, shapes.gc_paused():
            for incoming in batch:
                topic = incoming.topic
                try:
                    device_id = self._device_of(topic)
                    body = _load(incoming.payload)
                    if self.options.auth == "token":
                        self._authenticate(session, body, device_id, clock)
                    entry = per_device.get(device_id)
                    if entry is None:
                        context = self._context(session, device_id, clock)
                        policies = self._policies(session, clock)
                        entry = (
                            context,
                            shapes.Collector(now_ms, device_id=device_id, policies=policies),
                        )
                        per_device[device_id] = entry
                    collector = entry[1]
                    mark = collector.mark()
                    claimed = shapes.add_message(collector, body)
                    if collector.problem_count > mark[2]:
                        problems = collector.rollback(mark)
                        raise _Refused(
                            "nothing was stored: "
                            + "; ".join(f"{p.where}: {p.reason}" for p in problems[:3])
                        )
                    if claimed is not None and claimed != device_id:
                        collector.rollback(mark)
                        raise _Refused(f"the payload names device {claimed}, the topic {device_id}")
                    if len(collector.checked.rejected) > mark[1]:
                        rejected = collector.checked.rejected[mark[1] :]
                        reports.append(
                            (topic + "/errors", {"rejections": [p.as_dict() for p in rejected]})
                        )
                except _Refused as refused:
                    self.stats.invalid += 1
                    log.info("refused a message on %s: %s", topic, refused.reason)
                    reports.append((topic + "/errors", {"error": refused.reason}))
            result = ingest.store(
                session=session,
                batches=[
                    (context, collector.checked) for context, collector in per_device.values()
                ],
                marks=self._marks,
            )
        self.stats.messages += len(batch)
        self.stats.accepted += result.accepted
        self.stats.duplicates += result.duplicates
        self.stats.rejected += result.rejected
        self.stats.batches += 1
        return reports

    def _device_of(self, topic: str) -> int:
        device_id = self._topics.get(topic)
        if device_id is None:
            device_id = device_of_topic(topic)
            if device_id is None:
                raise _Refused(f"topic {topic!r} is not {TOPIC_FILTER}")
            if len(self._topics) > 1_000_000:
                self._topics.clear()
            self._topics[topic] = device_id
        return device_id

    def _authenticate(self, session: Any, body: Any, device_id: int, clock: float) -> None:
        token = body.pop("token", None) if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise _Refused('the message needs the device token in "token"')
        cached = self._tokens.get(token)
        if cached is None or cached[1] < clock:
            try:
                actor = auth.authenticate(session=session, token=token)
            except DomainError as error:
                self._tokens.pop(token, None)
                raise _Refused(error.detail) from None
            if actor.role is not Role.DEVICE or actor.device_id is None:
                raise _Refused("the token is not a device token")
            cached = (actor.device_id, clock + CACHE_SECONDS)
            if len(self._tokens) > 100_000:
                self._tokens.clear()
            self._tokens[token] = cached
        if cached[0] != device_id:
            raise _Refused(
                f"this token belongs to device {cached[0]}; it may not write for device {device_id}"
            )

    def _policies(self, session: Any, clock: float) -> dict[str, metrics.OutOfRangePolicy] | None:
        if self._policy_cache is None or self._policy_cache[1] < clock:
            self._policy_cache = (
                ingest.metric_policies(session=session),
                clock + CACHE_SECONDS,
            )
        return self._policy_cache[0]

    def _context(self, session: Any, device_id: int, clock: float) -> ingest.DeviceContext:
        cached = self._contexts.get(device_id)
        if cached is not None and cached[1] >= clock:
            context = cached[0]
        else:
            device = session.get(Device, device_id)
            if device is None:
                raise _Refused(f"no device with id {device_id}")
            context = ingest.device_context(session=session, device=device)
            self._contexts[device_id] = (context, clock + CACHE_SECONDS)
        if context.retired:
            raise _Refused(f"device {device_id} was retired")
        return context


def _load(payload: bytes | bytearray) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise _Refused(f"not valid JSON ({error})") from None


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
