"""A backend plugin over HTTP/1.1 (unix socket or TCP), with a pool of keep-alive connections.

What it promises the proxy:

* the backend gets dockerd's body and headers as they came (see wire.ClientWire);
* it is activated once (`Plugin.Activate`, as dockerd would have done) before its first call;
* a backend that is not there yet (socket missing, connection refused) is retried on dockerd's
  own schedule (1, 2, 4, 8 s: about 15 s, protocol.md §4.2), so a backend restart that dockerd
  would have ridden out is ridden out here too;
* an idle connection the backend has closed is noticed before it is reused, and a request on a
  reused connection that the backend provably never read (the write failed, or the connection
  was reset with it unread) is sent again on a new one; a request the backend may have read is
  never sent twice;
* every failure becomes a BackendError naming the backend; each call has a deadline a little
  longer than dockerd's for that operation, so we never give up before dockerd does.
"""

from __future__ import annotations

import errno
import logging
import math
import select
from dataclasses import dataclass
from typing import Final

import h11
import trio

from chaosvol.backends import AnswerSink, Connector
from chaosvol.core.errors import BackendError, BackendProtocolError, BackendTimeout, BackendUnavailable
from chaosvol.core.protocol import LARGE_BODY, Operation, PluginCall, PluginReply, field_of
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ClientWire
from chaosvol.wire.streams import RECEIVE_SIZE

log = logging.getLogger(__name__)

# dockerd's retry sleeps for a plugin it cannot reach (client.go, backoff 1, 2, 4, 8 s).
CONNECT_RETRY_DELAYS: Final = (1.0, 2.0, 4.0, 8.0)
# dockerd gives Create and Mount 2 minutes and the rest 1 (protocol.md §4.1); we wait 10 s
# longer, so that chaosvol never gives up on a call that dockerd is still waiting for.
LONG_OPERATIONS: Final = frozenset({Operation.CREATE, Operation.MOUNT})
DEFAULT_TIMEOUT_LONG: Final = 120.0 + 10.0
DEFAULT_TIMEOUT_SHORT: Final = 60.0 + 10.0
# Idle connections kept per backend; dockerd itself keeps 2, we serve many daemons' bursts.
MAX_IDLE: Final = 64
# An answer of LARGE_BODY or more is passed on as it arrives when the caller can take it
# (call() with a sink): store and forward made a List of 10,000 volumes (870 KB) take twice as long.
# Reads: RECEIVE_SIZE, or up to 1 MiB at a time once a long answer's length is known.
MAX_RECEIVE_SIZE: Final = 1024 * 1024
_RETRYABLE_CONNECT: Final = frozenset({errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN})
_POLL_CLOSED: Final = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | getattr(select, "POLLRDHUP", 0)


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    long: float = DEFAULT_TIMEOUT_LONG
    short: float = DEFAULT_TIMEOUT_SHORT
    connect_retry_delays: tuple[float, ...] = CONNECT_RETRY_DELAYS

    def for_operation(self, operation: Operation) -> float:
        return self.long if operation in LONG_OPERATIONS else self.short


class _Connection:
    __slots__ = ("reused", "stream", "timed_out", "wire")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.wire = ClientWire()
        self.reused = False
        self.timed_out = False  # the deadline watchdog closed it under a call


@dataclass(frozen=True, slots=True)
class _Deadline:
    at: float  # trio time
    seconds: float  # the timeout it came from
    operation: Operation  # the daemon's call it is for (an activation on the way counts as part of it)

    def missed(self, backend: str) -> BackendTimeout:
        return BackendTimeout(backend, f"no answer to {self.operation.value} in {self.seconds:g}s")


class _NothingSent(Exception):
    """The request could not be written on a reused connection: safe to send again."""


class PluginClient:
    """A backend plugin reached through `connector`."""

    def __init__(
        self,
        name: str,
        connector: Connector,
        *,
        host: bytes = b"",
        timeouts: ClientTimeouts = ClientTimeouts(),
        activate: bool = True,
    ) -> None:
        self.name = name
        self._connector = connector
        self._host = host
        self._timeouts = timeouts
        self._idle: list[_Connection] = []
        self._activated = not activate
        self._activation_lock = trio.Lock()
        self._closed = False
        # Deadlines: calls register here, run() closes a connection whose call is late.
        self._watching = False
        self._watched: dict[_Connection, float] = {}  # connection -> deadline, while a call waits on it
        self._watchdog_wakeup = trio.Event()
        self._watchdog_next = math.inf  # the deadline the watchdog sleeps until

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        """The backend's answer; one of LARGE_BODY bytes or more goes on to `sink` as it
        arrives (see AnswerSink). Only while `run()` runs, which keeps the call's deadline."""
        if not self._watching:
            raise RuntimeError(f"backend {self.name}: call() while run() is not running (use backends.running())")
        timeout = self._timeouts.for_operation(call.operation)
        deadline = _Deadline(trio.current_time() + timeout, timeout, call.operation)
        if not self._activated:
            await self._activate(deadline)
        return await self._exchange(call, sink, deadline)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep every call's deadline from this one task, until cancelled: a call past its
        deadline has its connection closed under it, and ends with BackendTimeout. (One task
        rather than a trio deadline scope per call: 15 us a call, as trio keeps each exited
        deadline in its heap until it prunes it.)"""
        if self._watching:
            raise RuntimeError(f"backend {self.name}: run() is already running")
        self._watching = True
        task_status.started()
        try:
            while True:
                now = trio.current_time()
                for connection in [c for c, at in self._watched.items() if at <= now]:
                    del self._watched[connection]
                    connection.timed_out = True
                    await trio.aclose_forcefully(connection.stream)  # wakes the call waiting on it
                self._watchdog_next = min(self._watched.values(), default=math.inf)
                self._watchdog_wakeup = trio.Event()
                with trio.move_on_at(self._watchdog_next):
                    await self._watchdog_wakeup.wait()  # an earlier deadline came
        finally:
            self._watching = False

    def _watch(self, connection: _Connection, deadline: _Deadline) -> None:
        self._watched[connection] = deadline.at
        if deadline.at < self._watchdog_next:
            self._watchdog_wakeup.set()

    async def _activate(self, deadline: _Deadline) -> None:
        async with self._activation_lock:
            if self._activated:
                return
            reply = await self._exchange(PluginCall.build(Operation.ACTIVATE), None, deadline)
            value = reply.decoded()
            implements = field_of(value, "Implements") if isinstance(value, dict) else None
            if reply.status != 200 or not isinstance(implements, list) or "VolumeDriver" not in implements:
                raise BackendProtocolError(
                    self.name,
                    f"Plugin.Activate answered {reply.status} {reply.body[:200]!r}, without VolumeDriver in Implements",
                )
            self._activated = True

    async def _exchange(self, call: PluginCall, sink: AnswerSink | None, deadline: _Deadline) -> PluginReply:
        connection = await self._take_connection(deadline)
        try:
            try:
                return await self._round_trip(connection, call, sink, deadline)
            except _NothingSent:
                await connection.stream.aclose()
                connection = await self._connect(deadline)
                return await self._round_trip(connection, call, sink, deadline)
        except BaseException:
            connection.wire = ClientWire()  # never reuse a connection an exchange broke off
            await trio.aclose_forcefully(connection.stream)
            raise

    async def _round_trip(self, connection: _Connection, call: PluginCall, sink: AnswerSink | None, deadline: _Deadline) -> PluginReply:
        self._watch(connection, deadline)
        try:
            return await self._round_trip_io(connection, call, sink)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, BackendError, _NothingSent) as exc:
            if connection.timed_out:
                raise deadline.missed(self.name) from exc
            raise
        finally:
            self._watched.pop(connection, None)

    async def _round_trip_io(self, connection: _Connection, call: PluginCall, sink: AnswerSink | None) -> PluginReply:
        wire = connection.wire
        streaming: AnswerSink | None = None  # the sink, once it took the answer
        to_pass_on = 0  # body bytes it still gets
        data = wire.request_bytes(call, self._host)
        try:
            await connection.stream.send_all(data)
        except (OSError, trio.BrokenResourceError) as exc:
            if connection.reused:
                raise _NothingSent() from exc
            raise BackendUnavailable(self.name, f"sending {call.operation.value}: {_reason(exc)}") from exc
        try:
            while True:
                reply = wire.next_reply()
                if reply is WireState.NEED_DATA:
                    if sink is not None and wire.head is not None:
                        streaming, to_pass_on = await _pass_on(sink, wire)
                        sink = None  # asked once
                    received = await connection.stream.receive_some(max(RECEIVE_SIZE, min(wire.expecting, MAX_RECEIVE_SIZE)))
                    wire.receive_data(received)
                    if streaming is not None and to_pass_on > 0 and received:
                        piece = received[:to_pass_on] if len(received) > to_pass_on else received
                        to_pass_on -= len(piece)
                        await streaming.body(piece)
                    continue
                assert isinstance(reply, PluginReply)
                break
        except (OSError, trio.BrokenResourceError) as exc:
            if connection.reused and not wire.got_any_response and _errno(exc) == errno.ECONNRESET:
                # A reset (not a clean EOF) means the backend closed with our request unread in
                # its buffer: it closed the idle connection as we reused it. Never read, so safe
                # to send again; after a clean EOF it may have acted, and we never resend.
                raise _NothingSent() from exc
            raise BackendUnavailable(self.name, f"connection lost waiting for the answer to {call.operation.value}: {_reason(exc)}") from exc
        except h11.RemoteProtocolError as exc:
            if not wire.got_any_response:
                raise BackendUnavailable(self.name, f"connection closed without an answer to {call.operation.value}") from exc
            raise BackendProtocolError(self.name, f"bad answer to {call.operation.value}: {exc}") from exc
        if wire.reusable and not self._closed and not connection.timed_out and len(self._idle) < MAX_IDLE:
            connection.reused = True
            self._idle.append(connection)
        else:
            await connection.stream.aclose()
        return reply

    async def _take_connection(self, deadline: _Deadline) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if _still_open(connection.stream):
                return connection
            await connection.stream.aclose()
        return await self._connect(deadline)

    async def _connect(self, deadline: _Deadline) -> _Connection:
        """A new connection, retried on dockerd's schedule, within `deadline` (the watchdog cannot
        close a connection that is not there yet)."""
        delays = iter(self._timeouts.connect_retry_delays)
        while True:
            try:
                with trio.move_on_at(deadline.at):
                    return _Connection(await self._connector())
                raise deadline.missed(self.name)
            except OSError as exc:
                delay = next(delays, None) if exc.errno in _RETRYABLE_CONNECT else None
                if delay is None:
                    raise BackendUnavailable(self.name, f"cannot connect: {_reason(exc)}") from exc
                log.warning("backend %s: cannot connect (%s), retrying in %gs", self.name, _reason(exc), delay)
                if trio.current_time() + delay >= deadline.at:
                    await trio.sleep_until(deadline.at)
                    raise deadline.missed(self.name) from exc
                await trio.sleep(delay)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await trio.aclose_forcefully(connection.stream)


async def _pass_on(sink: AnswerSink, wire: ClientWire) -> tuple[AnswerSink | None, int]:
    """Offer a long answer whose head is in to `sink`: the sink and the body bytes it still
    needs when it took it, else (None, 0)."""
    head = wire.head
    if head is None or head.length < LARGE_BODY or not await sink.begin(head.status, head.content_type, head.length):
        return None, 0
    so_far = wire.body_so_far()
    if so_far:
        await sink.body(so_far)
    return sink, head.length - len(so_far)


def _still_open(stream: trio.abc.Stream) -> bool:
    """Whether an idle connection can be reused: the peer has not closed it or sent anything.

    Go's transport learns the same from a background read on every idle connection; one poll
    with no timeout when we take it out of the pool costs less.
    """
    sock = getattr(stream, "socket", None)
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), _POLL_CLOSED)
    return not poller.poll(0)


def _errno(exc: BaseException) -> int | None:
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, OSError):
            return candidate.errno
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, trio.BrokenResourceError) and isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(exc) or type(exc).__name__
