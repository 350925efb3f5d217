"""The hub's MQTT session: QoS 1, persistent, with acknowledgements held until data is committed."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.health import Health
from hub.ingest.inbound import Inbound

log = logging.getLogger(__name__)

# Message suffixes that may carry an SOS/fall/alarm: they go to the never-shed queues.
URGENT_SUFFIXES = ("/sos", "/fall", "/alarm", "/checkin")
CRITICAL_SUFFIXES = (*URGENT_SUFFIXES, "/state")


class MqttSource:
    """Runs paho's network thread and hands messages to the event loop; never drops a critical one."""

    def __init__(
        self,
        url: str,
        client_id: str,
        topics: list[str],
        deliver: Callable[[Inbound], None],
        health: Health,
        critical_room: Callable[[], bool],
        telemetry_room: Callable[[], bool],
        critical_prefixes: tuple[str, ...] = (),
    ) -> None:
        self._critical_prefixes = critical_prefixes  # whole topic trees never shed (zigbee2mqtt)
        self._pending: deque[Inbound] = deque()
        self._scheduled = False
        # Bumped on every (re)connect: a message id is only meaningful on the connection it came on.
        self._generation = 0
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 1883
        self._topics = topics
        self._deliver = deliver
        self._health = health
        self._critical_room = critical_room
        self._telemetry_room = telemetry_room
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained = threading.Event()
        self._stopping = False
        self._attempt = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background; paho's thread reconnects on its own after a drop."""
        self._loop = loop
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._health.broker.down("connecting")
        threading.Thread(target=self._connect_forever, name="mqtt-connect", daemon=True).start()

    def _connect_forever(self) -> None:
        # The first connect must also retry: the broker may come up after the hub.
        while not self._stopping:
            try:
                self.client.connect(self._host, self._port, keepalive=30)
            except OSError as err:
                self._health.broker.down(f"connect failed: {type(err).__name__}")
                time.sleep(self._backoff())
                continue
            self.client.loop_start()
            return

    def _backoff(self) -> float:
        self._attempt += 1
        return min(30.0, 0.5 * 2 ** min(self._attempt, 6)) * random.uniform(0.5, 1.0)  # noqa: S311

    def stop(self) -> None:
        """Disconnect cleanly; unacknowledged critical messages stay at the broker."""
        self._stopping = True
        self._drained.set()
        self.client.disconnect()
        self.client.loop_stop()

    def notify_drained(self) -> None:
        """Called by the consumer when the critical queue has room again."""
        self._drained.set()

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, reason: object, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            # A refused connection is not "connected": report why and let paho retry.
            self._health.broker.down(f"connection refused: {reason}")
            log.error("broker refused the hub's connection: %s", reason)
            return
        self._attempt = 0
        self._generation += 1
        client.subscribe([(t, 1) for t in self._topics])
        self._health.broker.up()
        log.info("connected to broker %s:%s", self._host, self._port)

    def _on_disconnect(self, _c: object, _ud: object, _flags: object, reason: object, _props: object) -> None:
        if not self._stopping:
            self._health.broker.down(f"disconnected: {reason}")
            log.warning("broker connection lost (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        critical = msg.topic.endswith(CRITICAL_SUFFIXES) or msg.topic.startswith(self._critical_prefixes)
        mid, qos, generation = msg.mid, msg.qos, self._generation

        def ack() -> None:
            # A commit that completes after a reconnect must not acknowledge: on the new connection the
            # same id may belong to another, unstored message. The broker redelivers ours instead, and the
            # duplicate is ignored by the (device, id, ts) key.
            if qos > 0 and generation == self._generation:
                client.ack(mid, qos)

        if critical:
            # Backpressure instead of loss: hold paho's thread until the consumer makes room.
            while not self._critical_room() and not self._stopping:
                self._drained.clear()
                self._drained.wait(0.5)
            item = Inbound(msg.topic, bytes(msg.payload), time.time(), ack, True, msg.topic.endswith(URGENT_SUFFIXES))
        else:
            # Telemetry is acknowledged on receipt: it may be shed under overload, never critical.
            ack()
            if not self._telemetry_room():
                self._health.count("shed_telemetry")
                return
            item = Inbound(msg.topic, bytes(msg.payload), time.time(), None, False)
        self._pending.append(item)
        if not self._scheduled:
            # One wake-up of the event loop per burst, not per message (each wake-up is a syscall).
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        self._scheduled = False  # cleared first: anything appended from now on schedules a new hand-over
        pending, deliver = self._pending, self._deliver
        while pending:
            deliver(pending.popleft())
