"""The trio shell around paho-mqtt: one connection to a broker, MQTT 5 by default.

    async with open_mqtt(MqttOptions("127.0.0.1", client_id="node-a")) as client:
        await client.subscribe([("home/#", 1)])
        await client.publish("home/lamp", b"on", qos=1, retain=True)
        async for message in client.messages:
            ...

Theory of operation
-------------------
paho-mqtt is the protocol engine (packets, packet ids, QoS flows, keepalive);
this module only waits and moves bytes, through paho's external-loop API
(``loop_read``, ``loop_write``, ``loop_misc`` and the ``on_socket_*`` hooks).
No thread is involved, not even for the connect (only a host *name* is
resolved in trio's getaddrinfo worker thread; an IP address is not):

* **Connect.** trio opens the TCP connection itself (``trio.open_tcp_stream``,
  non-blocking, bounded by ``connect_timeout``); the connected socket is
  handed to paho by overriding ``Client._create_socket``, the one place
  paho's ``connect()`` would otherwise block in ``socket.create_connection``.
  paho then queues CONNECT, and the CONNACK is awaited within the same
  ``connect_timeout``.  (The alternative, paho's blocking ``connect()`` in
  ``trio.to_thread.run_sync``, would run paho's socket hooks in that thread.)
* **Reading.** One task waits with ``trio.lowlevel.wait_readable`` and calls
  ``loop_read``; paho's callbacks append each PUBLISH to the inbox and wake
  the waiters of PUBACK, SUBACK, UNSUBACK.  paho reads from `_BrokerSocket`,
  which reads the kernel in 64 KiB chunks (paho itself asks for one byte, then
  the length bytes, then the rest: three system calls per packet) and
  **refuses to read** (``BlockingIOError``, which paho treats as "no data
  yet") while the inbox holds *buffer* messages.  So a flooding broker meets
  TCP backpressure, the inbox never holds more than *buffer* messages, and
  nothing is dropped.  Reading resumes when the reader has taken half of them.
  While reading waits, acknowledgements wait too: a reader that stalls for
  longer than the keepalive loses the connection (paho's ping goes
  unanswered), which surfaces as `BusUnavailableError` like any loss.
* **Writing.** paho queues packets and calls ``on_socket_register_write``;
  every call into paho here is followed by `_flush`, which writes at once
  (the socket is non-blocking).  Only what the kernel does not take wakes the
  writer task, which waits with ``wait_writable``.  A qos 0 publish returns
  once paho wrote it to the kernel (``is_published()``); ``on_publish`` is
  detached while writing, since paho builds a Properties object for each
  qos 0 callback, and serves the PUBACK/PUBCOMP of qos 1 and 2.
* **Keepalive.** A task calls ``loop_misc`` every second.
* **Loss.** When paho reports the connection closed (EOF, reset, keepalive,
  a DISCONNECT from the broker), the client records a `BusUnavailableError`,
  wakes every waiter, and cancels the ``async with`` body and its own tasks;
  ``open_mqtt`` then raises that error.  No reconnect here: the caller's loop
  catches `BusUnavailableError` and opens a new client.
* **paho's private names.** ``Client._create_socket`` (overridden) and
  ``Client._sock_close`` (to drop a socket that never got its CONNACK); the
  dependency is pinned to the paho versions tested.
* **Leaving.** A body that ends normally sends DISCONNECT (reason 0), so the
  broker drops the will.  A body that ends with an exception (cancellation
  included) sends DISCONNECT with reason 0x04 "Disconnect with Will Message":
  the broker publishes the will, as it would for a crash.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final, Literal

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from moat_log.errors import AdapterError, BusDataError, BusUnavailableError, ConfigError
from moat_log.streams import single_errors_unwrapped

__all__ = ["Message", "MqttClient", "MqttOptions", "Will", "open_mqtt"]

log = logging.getLogger("moat_log.adapters.mqtt")

_CHUNK: Final = 64 * 1024
#: Packets ``loop_read`` handles before the reader lets other tasks run.
_PACKETS_PER_TURN: Final = 256
#: Seconds between ``loop_misc`` calls (keepalive pings, ping timeouts).
_MISC_INTERVAL: Final = 1.0
#: The most seconds a clean exit waits for its DISCONNECT to be written.
_LEAVE_TIMEOUT: Final = 2.0
_WRITTEN: Final = ReasonCode(PacketTypes.PUBACK)
_LOGIN_REFUSED: Final = (
    ReasonCode(PacketTypes.CONNACK, identifier=0x86),
    ReasonCode(PacketTypes.CONNACK, identifier=0x87),
)


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for us if we vanish without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"will qos must be 0, 1 or 2, not {self.qos!r}")
        if not self.topic or "+" in self.topic or "#" in self.topic:
            raise ConfigError(f"a will needs a topic without wildcards, not {self.topic!r}")


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """Where the broker is and how to log in.

    *protocol* is the MQTT protocol level: 5 (MQTT 5, the default) or 4
    (MQTT 3.1.1, which has neither user properties nor No Local).
    *connect_timeout* bounds the TCP connect and the CONNACK together.
    """

    host: str
    _: KW_ONLY
    client_id: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    will: Will | None = None
    protocol: Literal[4, 5] = 5
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"MQTT port must be 1..65535, not {self.port!r}")
        if not 0 <= self.keepalive <= 65535:
            raise ConfigError(f"MQTT keepalive must be 0..65535 s, not {self.keepalive!r}")
        if self.protocol not in (4, 5):
            raise ConfigError(f"MQTT protocol must be 5 or 4 (3.1.1), not {self.protocol!r}")
        if not self.connect_timeout > 0:
            raise ConfigError(f"connect_timeout must be positive, not {self.connect_timeout!r}")
        if self.password is not None and self.username is None:
            raise ConfigError("an MQTT password needs a username")

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Message:
    """One PUBLISH received; *retain* is set for a retained message sent on subscribing."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...] = ()


class _BrokerSocket:
    """The socket paho reads and writes: chunked reads, refused while *paused*."""

    __slots__ = ("_data", "_pos", "paused", "raw", "starved")

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self._data = b""
        self._pos = 0
        #: Set while the inbox is full: reads raise BlockingIOError.
        self.paused = False
        #: Set when a read found nothing (or was refused): wait before the next.
        self.starved = False

    @property
    def holds_data(self) -> bool:
        return self._pos < len(self._data)

    def recv(self, size: int) -> bytes:
        if self.paused:
            self.starved = True
            raise BlockingIOError
        if self._pos >= len(self._data):
            try:
                self._data = self.raw.recv(_CHUNK)
            except BlockingIOError:
                self.starved = True
                raise
            self._pos = 0
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk  # b"" at EOF: paho reports the connection lost

    def send(self, data: bytes | bytearray) -> int:
        return self.raw.send(data)

    def close(self) -> None:
        if self.raw.fileno() == -1:
            return
        # Tasks waiting on the fd get ClosedResourceError instead of a reused fd.
        trio.lowlevel.notify_closing(self.raw)
        self.raw.close()

    def fileno(self) -> int:
        return self.raw.fileno()

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)


class _Paho(paho.Client):
    """paho's client, connecting over a socket trio already connected."""

    adopted: _BrokerSocket | None = None

    def _create_socket(self) -> Any:  # paho's SocketLike protocol
        sock, self.adopted = self.adopted, None
        if sock is None:  # paho reconnecting on its own: never here, the caller reconnects
            raise OSError("no connected socket to hand to paho")
        return sock


class _Reply:
    """A packet id's wait for PUBACK/PUBCOMP, SUBACK or UNSUBACK."""

    __slots__ = ("done", "reasons")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reasons: list[ReasonCode] = []


class MqttClient:
    """A connected MQTT client; get one from `open_mqtt`."""

    def __init__(self, options: MqttOptions, sock: _BrokerSocket, buffer: int) -> None:
        self._options = options
        self._sock = sock
        self._buffer = buffer
        self._inbox: deque[Message] = deque()
        self._arrived = trio.Event()
        self._room = trio.Event()
        self._write_wanted = False
        self._writer_wakeup = trio.Event()
        self._replies: dict[int, _Reply] = {}
        #: qos 0 publications the kernel did not take at once, by packet id.
        self._unwritten: dict[int, tuple[paho.MQTTMessageInfo, _Reply]] = {}
        self._connack: ReasonCode | None = None
        self._connack_seen = trio.Event()
        self._lost: str | None = None
        self._socket_closed = trio.Event()
        self._leaving = False
        self._closed = False
        self._scope = trio.CancelScope()
        #: The most messages the inbox ever held (never more than *buffer*).
        self.peak_buffered = 0
        self._paho = self._make_paho(sock)

    def _make_paho(self, sock: _BrokerSocket) -> _Paho:
        opts = self._options
        v5 = opts.protocol == 5
        client = _Paho(
            CallbackAPIVersion.VERSION2,
            client_id=opts.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
        )
        client.adopted = sock
        client.suppress_exceptions = False  # a bug in a callback must not vanish in a log
        if opts.username is not None:
            client.username_pw_set(opts.username, opts.password)
        if opts.will is not None:
            w = opts.will
            client.will_set(w.topic, w.payload, w.qos, w.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_reply
        client.on_subscribe = self._on_subscribe_reply
        client.on_unsubscribe = self._on_subscribe_reply
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # --- paho's callbacks (run inside loop_read / loop_write / loop_misc) ---

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
        self._connack = reason
        self._connack_seen.set()

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if self._leaving:
            return
        if self._connack is not None and self._connack.is_failure:
            self._lose(self._refusal())
            return
        if flags.is_disconnect_packet_from_server:
            why = f"disconnected us: {reason}"
        elif reason == ReasonCode(PacketTypes.DISCONNECT, "Keep alive timeout"):
            why = "did not answer within the keepalive"
        else:
            why = "closed the connection"
        self._lose(f"the MQTT broker at {self._options.address} {why}")

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        props = msg.properties
        pairs = getattr(props, "UserProperty", ()) if props is not None else ()
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # the broker broke MQTT-4.7.3: said, not dropped silently
            log.warning("MQTT broker %s sent a topic that is not UTF-8", self._options.address)
            return
        message = Message(topic, bytes(msg.payload), msg.qos, bool(msg.retain), tuple(pairs))
        self._inbox.append(message)
        self._arrived.set()
        if len(self._inbox) >= self._buffer:
            self._sock.paused = True
        self.peak_buffered = max(self.peak_buffered, len(self._inbox))

    def _on_reply(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        reply = self._replies.get(mid)
        if reply is not None:  # None: qos 0 written at once, or its caller was cancelled
            reply.reasons = [reason]
            reply.done.set()

    def _on_subscribe_reply(
        self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        reply = self._replies.get(mid)
        if reply is not None:
            reply.reasons = reasons
            reply.done.set()

    def _on_socket_close(self, _c: Any, _u: Any, _s: Any) -> None:
        self._socket_closed.set()

    def _on_register_write(self, _c: Any, _u: Any, _s: Any) -> None:
        self._write_wanted = True

    def _on_unregister_write(self, _c: Any, _u: Any, _s: Any) -> None:
        self._write_wanted = False

    # --- the shell ---

    def _lose(self, message: str) -> None:
        if self._lost is not None:
            return
        self._lost = message
        for reply in [*self._replies.values(), *(r for _, r in self._unwritten.values())]:
            reply.done.set()
        self._arrived.set()
        self._connack_seen.set()
        self._scope.cancel()

    def _flush(self) -> None:
        """Write what paho queued; what the kernel does not take now goes to the writer."""
        if self._write_wanted:
            self._write()
            if self._write_wanted:
                self._writer_wakeup.set()
        elif self._unwritten:
            self._settle_unwritten()

    def _write(self) -> None:
        paho = self._paho
        # For each qos 0 PUBLISH written paho builds a Properties object for
        # on_publish (a third of a round trip's CPU); is_published() says it free.
        paho.on_publish = None
        try:
            paho.loop_write()
        finally:
            paho.on_publish = self._on_reply
        if self._unwritten:
            self._settle_unwritten()

    def _settle_unwritten(self) -> None:
        for info, reply in self._unwritten.values():
            if info.is_published():
                reply.reasons = [_WRITTEN]
                reply.done.set()

    def _lost_error(self) -> BusUnavailableError:
        return BusUnavailableError(self._lost or f"not connected to {self._options.address}")

    def _check_usable(self) -> None:
        if self._lost is not None:
            raise self._lost_error()
        if self._closed:
            raise AdapterError(f"the MQTT client for {self._options.address} is closed")

    async def _read_loop(self) -> None:
        sock = self._sock
        try:
            while self._lost is None and not self._closed:
                if sock.paused:
                    await self._room.wait()
                    self._room = trio.Event()
                    continue
                if sock.holds_data:
                    await trio.lowlevel.checkpoint()
                else:
                    await trio.lowlevel.wait_readable(sock.raw)
                sock.starved = False
                for _ in range(_PACKETS_PER_TURN):
                    self._paho.loop_read()
                    if sock.starved or self._lost is not None:
                        break
                self._flush()
        except trio.ClosedResourceError:
            pass  # paho closed the socket; _on_disconnect said why

    async def _write_loop(self) -> None:
        try:
            while self._lost is None and not self._socket_closed.is_set():
                if not self._write_wanted:
                    await self._writer_wakeup.wait()
                    self._writer_wakeup = trio.Event()
                    continue
                await trio.lowlevel.wait_writable(self._sock.raw)
                self._write()
        except trio.ClosedResourceError:
            pass

    async def _misc_loop(self) -> None:
        while self._lost is None:
            await trio.sleep(_MISC_INTERVAL)
            self._paho.loop_misc()
            self._flush()

    def _refusal(self) -> str:
        reason = self._connack
        # 0x86 "Bad user name or password", 0x87 "Not authorized" (mosquitto's answer to both)
        hint = " (check the username and password)" if reason in _LOGIN_REFUSED else ""
        return f"the MQTT broker at {self._options.address} refused the connection: {reason}{hint}"

    async def _handshake(self, deadline: float) -> None:
        opts = self._options
        if opts.protocol == 5:
            self._paho.connect(opts.host, opts.port, opts.keepalive, clean_start=True)
        else:
            self._paho.connect(opts.host, opts.port, opts.keepalive)
        self._flush()
        with trio.move_on_at(deadline):
            await self._connack_seen.wait()
        if self._lost is not None:
            raise self._lost_error()
        if self._connack is None:
            raise BusUnavailableError(
                f"the MQTT broker at {opts.address} sent no CONNACK "
                f"within {opts.connect_timeout:g} s"
            )
        if self._connack.is_failure:
            raise BusUnavailableError(self._refusal())

    async def _leave(self, *, with_will: bool) -> None:
        """Send DISCONNECT (reason 0x04 publishes the will) and wait until it is written."""
        if self._lost is not None or self._closed:
            return
        self._leaving = True
        self._closed = True
        reason = ReasonCode(PacketTypes.DISCONNECT, identifier=4) if with_will else None
        self._paho.disconnect(reasoncode=reason if self._options.protocol == 5 else None)
        self._flush()
        # paho closes the socket once DISCONNECT is out; the writer finishes it if needed.
        with trio.move_on_after(_LEAVE_TIMEOUT, shield=True):
            await self._socket_closed.wait()

    def _close_socket(self) -> None:
        self._closed = True
        if self._paho.socket() is not None:
            self._leaving = True
            self._paho._sock_close()  # paho has no public "drop the socket now"

    # --- the public API ---

    @property
    def buffered(self) -> int:
        """Messages received and not yet taken."""
        return len(self._inbox)

    @property
    def messages(self) -> AsyncIterator[Message]:
        """``async for message in client.messages``: every message, in order."""
        return _Messages(self)

    async def receive(self) -> Message:
        """The next message, in the order the broker sent them."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._inbox:
            self._check_usable()
            await self._arrived.wait()
            self._arrived = trio.Event()
        message = self._inbox.popleft()
        if self._sock.paused and len(self._inbox) <= self._buffer // 2:
            self._sock.paused = False
            self._room.set()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return message

    async def receive_many(self, limit: int) -> list[Message]:
        """The next message and those already received after it: at least one, at most *limit*.

        For a reader that handles a burst in one go (one journal read and
        one write for all of it) instead of one message at a time.
        """
        first = await self.receive()
        messages = [first]
        inbox = self._inbox
        while inbox and len(messages) < limit:
            messages.append(inbox.popleft())
        if self._sock.paused and len(inbox) <= self._buffer // 2:
            self._sock.paused = False
            self._room.set()
        return messages

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Publish; qos 0 returns once written, qos 1 and 2 once the broker acknowledged.

        Raises `BusDataError` for a topic paho refuses (wildcards, empty) or a
        bad qos, `AdapterError` if the broker refused the message (its reason
        code), `BusUnavailableError` if the connection went first.  Cancelled
        while it waits for the acknowledgement, the message may still arrive.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_usable()
        properties = None
        if user_properties:
            self._need_v5("user properties")
            # paho.mqtt.properties is the one module of paho without annotations.
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = list(user_properties)
        try:
            info = self._paho.publish(topic, payload, qos, retain, properties)
        except ValueError as exc:
            raise BusDataError(f"cannot publish to MQTT topic {topic!r}: {exc}") from exc
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            raise self._lost_error()
        self._flush()
        if qos == 0:
            if info.is_published():
                await trio.lowlevel.cancel_shielded_checkpoint()
            else:
                await self._await_written(info)
            return
        reasons = await self._await_reply(info.mid)
        if reasons and reasons[0].is_failure:
            raise AdapterError(
                f"the MQTT broker at {self._options.address} refused the message "
                f"to {topic!r}: {reasons[0]}"
            )

    async def subscribe(self, filters: Sequence[tuple[str, int]], *, no_local: bool = True) -> None:
        """Subscribe to (filter, qos) pairs; returns after the SUBACK.

        *no_local* (MQTT 5) asks the broker not to send back what this client
        publishes.  Raises `AdapterError` naming each filter the broker refused.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_usable()
        if not filters:
            raise BusDataError("subscribe needs at least one topic filter")
        topics: list[tuple[str, Any]]
        if self._options.protocol == 5:
            topics = [(f, SubscribeOptions(qos=q, noLocal=no_local)) for f, q in filters]
        else:
            if no_local:
                self._need_v5("no_local")
            topics = list(filters)
        try:
            rc, mid = self._paho.subscribe(topics)
        except ValueError as exc:
            raise BusDataError(f"cannot subscribe to {list(filters)!r}: {exc}") from exc
        await self._await_ack(rc, mid, "subscription to", [f for f, _ in filters])

    async def unsubscribe(self, filters: Sequence[str]) -> None:
        """Unsubscribe from topic filters; returns after the UNSUBACK."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_usable()
        if not filters:
            raise BusDataError("unsubscribe needs at least one topic filter")
        try:
            rc, mid = self._paho.unsubscribe(list(filters))
        except ValueError as exc:
            raise BusDataError(f"cannot unsubscribe from {list(filters)!r}: {exc}") from exc
        await self._await_ack(rc, mid, "unsubscription from", list(filters))

    async def _await_ack(
        self, rc: MQTTErrorCode, mid: int | None, what: str, names: list[str]
    ) -> None:
        if rc == MQTTErrorCode.MQTT_ERR_NO_CONN or mid is None:
            raise self._lost_error()
        self._flush()
        reasons = await self._await_reply(mid)
        refused = [
            f"{name!r} ({reason})"
            for name, reason in zip(names, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            raise AdapterError(
                f"the MQTT broker at {self._options.address} refused the {what} "
                + ", ".join(refused)
            )

    async def _await_written(self, info: paho.MQTTMessageInfo) -> None:
        reply = _Reply()
        self._unwritten[info.mid] = (info, reply)
        try:
            await reply.done.wait()
        finally:
            del self._unwritten[info.mid]
        if not reply.reasons:
            raise self._lost_error()

    async def _await_reply(self, mid: int) -> list[ReasonCode]:
        reply = self._replies[mid] = _Reply()
        try:
            await reply.done.wait()
        finally:
            del self._replies[mid]
        if not reply.reasons:  # woken by the loss
            raise self._lost_error()
        return reply.reasons

    @property
    def protocol(self) -> int:
        """The MQTT protocol level in use: 5, or 4 for MQTT 3.1.1."""
        return self._options.protocol

    async def publish_many(
        self,
        messages: Sequence[tuple[str, bytes, int, bool]],
        *,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Publish ``(topic, payload, qos, retain)`` messages in order, pipelined.

        All go out before the first acknowledgement is awaited, so a batch
        costs about one round trip, not one per message; they reach the
        broker in this order.  Returns once every qos >= 1 message is
        acknowledged (qos 0 ones once written).  Errors as `publish`.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_usable()
        properties = None
        if user_properties:
            self._need_v5("user properties")
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = list(user_properties)
        waiting: list[tuple[str, int, _Reply]] = []
        unwritten: list[paho.MQTTMessageInfo] = []
        try:
            for topic, payload, qos, retain in messages:
                try:
                    info = self._paho.publish(topic, payload, qos, retain, properties)
                except ValueError as exc:
                    raise BusDataError(f"cannot publish to MQTT topic {topic!r}: {exc}") from exc
                if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                    raise self._lost_error()
                if qos:
                    reply = self._replies[info.mid] = _Reply()
                    waiting.append((topic, info.mid, reply))
                elif not info.is_published():
                    unwritten.append(info)
            self._flush()
            for info in unwritten:
                await self._await_written(info)
            for topic, _mid, reply in waiting:
                await reply.done.wait()
                if not reply.reasons:  # woken by the loss
                    raise self._lost_error()
                if reply.reasons[0].is_failure:
                    raise AdapterError(
                        f"the MQTT broker at {self._options.address} refused the message "
                        f"to {topic!r}: {reply.reasons[0]}"
                    )
        finally:
            for _topic, mid, _reply in waiting:
                self._replies.pop(mid, None)

    def _need_v5(self, what: str) -> None:
        if self._options.protocol != 5:
            raise AdapterError(
                f"{what} need MQTT 5; the client for {self._options.address} uses 3.1.1"
            )


class _Messages:
    __slots__ = ("_client",)

    def __init__(self, client: MqttClient) -> None:
        self._client = client

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> Message:
        return await self._client.receive()


async def _connect_socket(options: MqttOptions, deadline: float) -> socket.socket:
    try:
        with trio.fail_at(deadline):
            stream = await trio.open_tcp_stream(options.host, options.port)
    except trio.TooSlowError:
        raise BusUnavailableError(
            f"the MQTT broker at {options.address} did not answer "
            f"within {options.connect_timeout:g} s"
        ) from None
    except OSError as exc:
        reason = "connection refused" if _refused(exc) else str(exc)
        raise BusUnavailableError(
            f"cannot reach the MQTT broker at {options.address}: {reason}"
        ) from exc
    # paho wants a plain socket: take the fd out of trio's wrapper.
    sock = socket.socket(fileno=stream.socket.detach())
    sock.setblocking(False)
    return sock


def _refused(exc: BaseException) -> bool:
    """A ConnectionRefusedError, or trio's OSError over one per address tried."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return all(_refused(inner) for inner in cause.exceptions)
    return False


@asynccontextmanager
async def open_mqtt(options: MqttOptions, *, buffer: int = 1000) -> AsyncIterator[MqttClient]:
    """Connect (clean start) and yield an `MqttClient`; leaving the block disconnects.

    Raises `BusUnavailableError` if the broker cannot be reached, does not
    answer within ``options.connect_timeout``, or refuses the login (with its
    CONNACK reason), and when the connection is lost while the body runs: the
    body is cancelled and the error raised here.  At most *buffer* received
    messages wait unread; then the client stops reading the socket.
    """
    if buffer < 1:
        raise ConfigError(f"buffer must be at least 1, not {buffer!r}")
    deadline = trio.current_time() + options.connect_timeout
    raw = await _connect_socket(options, deadline)
    try:
        client = MqttClient(options, _BrokerSocket(raw), buffer)
    except BaseException:
        raw.close()
        raise
    try:
        with single_errors_unwrapped(), client._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client._read_loop)
                nursery.start_soon(client._write_loop)
                nursery.start_soon(client._misc_loop)
                await client._handshake(deadline)
                try:
                    yield client
                except BaseException:
                    await client._leave(with_will=True)
                    raise
                else:
                    await client._leave(with_will=False)
                finally:
                    nursery.cancel_scope.cancel()
        if client._lost is not None:
            raise client._lost_error()
    finally:
        client._close_socket()
