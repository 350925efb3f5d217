"""The hub's MQTT session: QoS 1, persistent, with acknowledgements held until data is committed.

paho runs on the hub's event loop, not in a thread of its own: the socket is watched by the loop and
read when it is readable, so decoding never competes with a network thread for the GIL (a busy
consumer used to starve paho's thread for whole switch intervals, and the hub then idled waiting
for input it had not been given the time to read). Backpressure is TCP's: while the critical queue
is full the hub simply stops reading the socket, and the broker holds the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from socket import socket
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from hub.health import Health
from hub.ingest.inbound import Inbound

log = logging.getLogger(__name__)

# Message suffixes that may carry an SOS/fall/alarm: they go to the never-shed queues.
URGENT_SUFFIXES = ("/sos", "/fall", "/alarm", "/checkin")
CRITICAL_SUFFIXES = (*URGENT_SUFFIXES, "/state")
# Packets read per readiness callback before the consumer gets the loop back.
READ_BURST = 64
_CONNECT_TIMEOUT_S = 10.0


class _BufferedClient(mqtt.Client):
    """A paho client that reads the socket in large chunks: paho asks for each packet in three or four recv calls."""

    _CHUNK = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self.socket_reads = 0

    def buffered(self) -> bool:
        """True while bytes read from the socket wait here: the socket will not signal them again."""
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        """Forget unread bytes of a connection that is gone (the next one starts a fresh stream)."""
        self._rbuf, self._rpos = b"", 0

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(self._CHUNK)  # BlockingIOError when nothing is there, b"" at end of stream
            self.socket_reads += 1
            if not buf:
                return buf
            self._rbuf, pos = buf, 0
        end = min(pos + bufsize, len(buf))
        self._rpos = end
        return buf[pos:end]


class MqttSource:
    """Feeds the pipeline from a persistent paho session on the event loop; never drops a critical message."""

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
        # Bumped on every (re)connect and disconnect: a message id is only meaningful on its connection.
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
        self._loop_thread = 0
        self._sock: socket | None = None  # the socket the loop watches (paho's, while connected)
        self._reading = False
        self._writing = False
        self._flush_scheduled = False
        self._paused = False  # critical queue full: the socket is not read until the consumer drains
        self._received = 0
        self._stopping = False
        self._attempt = 0
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._read_scheduled = False
        self.client = _BufferedClient(
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
        self.client.on_socket_close = self._on_socket_close
        self.client.on_socket_register_write = self._on_register_write

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect in the background and keep connecting after every drop (runs on `loop`)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._health.broker.down("connecting")
        self._tasks = [loop.create_task(self._connect_forever(), name="mqtt-connect"),
                       loop.create_task(self._keepalive(), name="mqtt-keepalive")]

    def stop(self) -> None:
        """Disconnect cleanly; unacknowledged critical messages stay at the broker."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._sock is not None:
            self.client.disconnect()
            with contextlib.suppress(OSError):
                self.client.loop_write()  # DISCONNECT is tiny: it goes out now, and paho closes the socket
        self._unwatch()

    async def _connect_forever(self) -> None:
        # The first connect must also retry: the broker may come up after the hub.
        assert self._loop is not None
        first = True
        while not self._stopping:
            self._lost.clear()
            self.client.drop_buffer()
            try:
                # TCP connect and the CONNECT packet block: a thread keeps the loop free meanwhile.
                connect = self.client.connect if first else self.client.reconnect
                args = (self._host, self._port, 30) if first else ()
                await asyncio.wait_for(asyncio.to_thread(connect, *args), _CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                self._health.broker.down(f"connect failed: {type(err).__name__}")
                await asyncio.sleep(self._backoff())
                continue
            first = False
            self._watch()
            await self._lost.wait()
            if not self._stopping:
                await asyncio.sleep(self._backoff() if self._attempt else random.uniform(0.2, 1.0))  # noqa: S311

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._sock is not None:
                self.client.loop_misc()  # pings, and notices a broker that stopped answering

    def _backoff(self) -> float:
        self._attempt += 1
        return min(30.0, 0.5 * 2 ** min(self._attempt, 6)) * random.uniform(0.5, 1.0)  # noqa: S311

    # --- socket readiness ---------------------------------------------------------------------

    def _watch(self) -> None:
        assert self._loop is not None
        sock = self.client.socket()
        if not isinstance(sock, socket):
            self._lost.set()  # closed again before we got to it
            return
        self._sock = sock
        self._resume()
        self._flush()  # CONNECT may still be queued

    def _unwatch(self) -> None:
        if self._loop is not None and self._sock is not None:
            if self._reading:
                self._loop.remove_reader(self._sock)
            if self._writing:
                self._loop.remove_writer(self._sock)
        self._reading = self._writing = False
        self._sock = None

    def _resume(self) -> None:
        assert self._loop is not None
        self._paused = False
        if self._sock is not None and not self._reading:
            self._loop.add_reader(self._sock, self._on_readable)
            self._reading = True
            self._read_buffered()

    def _read_buffered(self) -> None:
        # Bytes already taken from the socket: the loop will not report them readable, so read them next turn.
        if self.client.buffered() and not self._read_scheduled and self._loop is not None:
            self._read_scheduled = True
            self._loop.call_soon(self._on_readable)

    def _on_readable(self) -> None:
        self._read_scheduled = False
        if self._sock is None or not self._reading:
            return  # a scheduled read after a pause or a closed connection
        client = self.client
        for _ in range(READ_BURST):
            before = self._received
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._paused:
                break
            if self._received == before and not client.buffered():
                break  # nothing more to read now (or a non-PUBLISH packet): the loop calls again when readable
        if self._paused and self._reading and self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._reading = False
        elif self._sock is not None:
            self._read_buffered()  # a full burst with more in hand: the consumer runs first, then this

    def _on_register_write(self, _client: object, _ud: object, _sock: object) -> None:
        # Packets queued (acks, forwards): write them once per loop iteration, not once per packet.
        if self._loop is None or self._flush_scheduled:
            return
        self._flush_scheduled = True
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._flush)
        else:  # paho's connect runs in a worker thread
            self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._sock is None or self._loop is None:
            return
        self.client.loop_write()
        if self._sock is None:
            return
        if self.client.want_write():  # the socket buffer is full: finish when it drains
            if not self._writing:
                self._loop.add_writer(self._sock, self._flush)
                self._writing = True
        elif self._writing:
            self._loop.remove_writer(self._sock)
            self._writing = False

    def _on_socket_close(self, _client: object, _ud: object, sock: object) -> None:
        if self._loop is None or sock is not self._sock:
            return
        if threading.get_ident() == self._loop_thread:
            self._closed()
        else:
            self._loop.call_soon_threadsafe(self._closed)

    def _closed(self) -> None:
        self._generation += 1  # acks still pending for the dead connection must not reach the next one
        self.client.drop_buffer()
        self._unwatch()
        self._lost.set()

    # --- paho callbacks (on the loop) ---------------------------------------------------------

    def notify_drained(self) -> None:
        """Called by the consumer after each slice: read again once the critical queue has room."""
        if self._paused and self._critical_room():
            self._resume()

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, reason: Any, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            # A refused connection is not "connected": report why and try again later.
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
        self._received += 1
        topic = msg.topic
        critical = topic.endswith(CRITICAL_SUFFIXES) or topic.startswith(self._critical_prefixes)
        mid, qos, generation = msg.mid, msg.qos, self._generation
        if critical:
            def ack() -> None:
                # A commit that completes after a reconnect must not acknowledge: on the new connection the
                # same id may belong to another, unstored message. The broker redelivers ours instead, and
                # the duplicate is ignored by the (device, id, ts) key.
                if qos > 0 and generation == self._generation:
                    client.ack(mid, qos)

            # Backpressure instead of loss: this one is kept, and the socket is not read again until the
            # consumer makes room (the queue overshoots its bound by at most one read burst's packet).
            if not self._critical_room():
                self._paused = True
            self._deliver(Inbound(topic, bytes(msg.payload), time.time(), ack, True, topic.endswith(URGENT_SUFFIXES)))
            return
        # Telemetry is acknowledged on receipt: it may be shed under overload, never critical.
        if qos > 0:
            client.ack(mid, qos)
        if not self._telemetry_room():
            self._health.count("shed_telemetry")
            return
        self._deliver(Inbound(topic, bytes(msg.payload), time.time(), None, False))
