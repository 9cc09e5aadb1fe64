"""The plugin socket: accept connections from the daemon, read calls, ask the engine, hand the
plan to the plan runner (chaosvol.proxy.plan), record the call; and the crash/restart cycle.

One task per connection; calls on one connection are served in order (HTTP/1.1), calls on
different connections concurrently. `decide()` never awaits, so it needs no lock, and no sleep
ever holds one: a delayed or hung call costs its own connection only. What the calls are served
with (engine, backend, holds, counters) is the ProxyState, shared with the control socket.

Errors by boundary:

* dockerd's bytes that are not a request we serve: an HTTP error with a JSON Err (wire/http.py);
* the backend without an answer: its BackendError's honest reply, naming the backend;
* anything else is our bug: logged with its traceback, that connection closed, the server goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import trio

from chaosvol.core.effects import Crash
from chaosvol.core.errors import RequestError
from chaosvol.core.events import CallRecord
from chaosvol.core.protocol import PluginCall
from chaosvol.core.retries import RetryLink
from chaosvol.proxy.connection import serve_connection
from chaosvol.proxy.plan import CallProgress, DockerSide, PlanRunner
from chaosvol.proxy.state import ProxyState
from chaosvol.proxy.unix import UnixListener, accept_forever, open_unix_listener
from chaosvol.wire.http import Refused, ServerWire
from chaosvol.wire.streams import RECEIVE_SIZE, SocketStream

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Connection:
    ident: int
    stream: trio.abc.Stream
    wire: ServerWire
    docker: DockerSide
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # cancelled only while idle
    idle: bool = False  # waiting for the next request


class PluginServer:
    """Serves one plugin socket until `shut_down()`, with the calls' state in `state`."""

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.settings = state.settings
        self.runner = PlanRunner(state, self.crash)
        self._connections: dict[int, _Connection] = {}
        self._next_connection = 0
        self._closing = False
        self._accept_scope: trio.CancelScope | None = None
        self._grace = state.settings.shutdown_grace
        self._crash: Crash | None = None
        self._helpers = trio.CancelScope()  # tasks that serve the connections, ended after them
        self.crashed = False  # died on purpose with no restart: the process should exit

    # -- life cycle ---------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[PluginServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, serve until `shut_down()` (or a crash with no restart), then return with the
        socket file removed.

        `nursery.start(server.serve)` returns once the socket accepts connections.

        Raises:
            UsageError: the socket cannot be created (live socket, bad path, permissions).
        """
        listener = await self._listen()
        state = self.state
        started = False
        try:
            async with trio.open_nursery() as outer:
                if state.events is not None:
                    state.log_profile("header")
                    outer.start_soon(state.events.run)
                await outer.start(self._until_shutdown, state.run_backend)
                try:
                    while True:
                        async with trio.open_nursery() as connections:
                            with trio.CancelScope() as self._accept_scope:
                                if not started:
                                    task_status.started(self)
                                    started = True
                                await self._accept_loop(listener, connections)
                            # Stopping or dying: nobody new gets in.
                            listener.unlink()
                            if self._crash is not None:
                                connections.cancel_scope.cancel()  # a dying process answers nothing
                            else:
                                connections.cancel_scope.deadline = trio.current_time() + self._grace
                        await listener.aclose()
                        if not await self._come_back_after_crash():
                            break
                        listener = await self._listen()
                        log.warning("crash: back on %s", self.settings.socket_path)
                finally:
                    if state.events is not None:
                        state.events.close()
                    self._helpers.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await listener.aclose()
                await state.backend.aclose()

    async def _until_shutdown(
        self, run: Callable[..., Awaitable[None]], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run a helper that runs until cancelled (`run(task_status=...)`), until the
        connections are all done."""
        with self._helpers:
            await run(task_status=task_status)

    async def _listen(self) -> UnixListener:
        return await open_unix_listener(
            self.settings.socket_path, mode=self.settings.socket_mode, backlog=self.settings.backlog
        )

    async def _come_back_after_crash(self) -> bool:
        """After a crash with a restart: wait, then True (listen again). Otherwise False."""
        crash, self._crash = self._crash, None
        if crash is None or self._closing:
            return False
        if crash.restart is None:
            self.crashed = True
            log.warning("crash: gone for good (no restart); exiting")
            return False
        log.warning("crash: socket removed; back in %gs", crash.restart)
        with trio.CancelScope() as self._accept_scope:  # shut_down() during the wait ends it
            await trio.sleep(crash.restart)
        return not self._closing

    def crash(self, effect: Crash) -> None:
        """Die now: close the socket and every connection; come back after `restart`, if any."""
        if self._crash is None and not self._closing:
            self._crash = effect
            if self._accept_scope is not None:
                self._accept_scope.cancel()

    def shut_down(self, grace: float | None = None) -> None:
        """Stop accepting, close idle connections, give in-flight calls `grace` seconds."""
        if grace is not None:
            self._grace = grace
        self._closing = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for connection in self._connections.values():
            if connection.idle:
                connection.scope.cancel()

    async def _accept_loop(self, listener: UnixListener, nursery: trio.Nursery) -> None:
        def handle(stream: SocketStream) -> None:
            self._next_connection += 1
            nursery.start_soon(self.handle_connection, stream, self._next_connection)

        await accept_forever(listener, handle, what="plugin socket")

    # -- one connection -----------------------------------------------------------------------

    async def handle_connection(self, stream: trio.abc.Stream, ident: int) -> None:
        """Serve calls on one connection until the daemon closes it (or we must)."""
        wire = ServerWire()
        connection = _Connection(ident, stream, wire, DockerSide(stream, wire))
        self._connections[ident] = connection
        self.state.connections += 1
        try:
            # One scope for the connection's life, cancelled by shut_down() only while the
            # connection waits idle for a request (a scope per wait cost 7 us a call).
            with connection.scope:
                await serve_connection(
                    wire,
                    partial(self._receive, connection),
                    partial(self.handle_call, connection=connection),
                    partial(self._refused, connection),
                    partial(self._bad_request, connection),
                )
        except Exception:
            log.exception("connection %d: internal error; closing this connection, serving on", ident)
        finally:
            del self._connections[ident]
            self.state.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _receive(self, connection: _Connection) -> bytes | bytearray | None:
        """Bytes from the daemon; None when the connection is over (closed, reset, timed out,
        or idle at shutdown)."""
        stream = connection.stream
        try:
            if connection.wire.mid_request:
                with trio.fail_after(self.settings.request_read_timeout):
                    return await stream.receive_some(RECEIVE_SIZE)
            if self._closing:
                return None
            connection.idle = True
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            finally:
                connection.idle = False
            # shut_down() came as the request did: the connection closes as if it had been first.
            return None if connection.scope.cancel_called else data
        except trio.TooSlowError:
            log.warning(
                "connection %d: request incomplete after %gs; closing", connection.ident, self.settings.request_read_timeout
            )
            return None
        except trio.BrokenResourceError:
            return None

    async def _refused(self, connection: _Connection, refused: Refused) -> bool:
        """A request for no endpoint of ours, or not a POST: answered, recorded, the connection kept."""
        log.warning("connection %d: %s", connection.ident, refused.error)
        self._record_refused(connection.ident, refused.target, refused.error)
        return await connection.docker.send(refused.error.docker_reply())

    async def _bad_request(self, connection: _Connection, error: RequestError) -> None:
        """Bytes that are no request we can serve: answered, recorded; the connection ends."""
        log.warning("connection %d: %s; answering %d and closing", connection.ident, error, error.status_hint)
        self._record_refused(connection.ident, None, error)
        await connection.docker.send_raw(connection.wire.error_bytes(error))

    # -- one call -----------------------------------------------------------------------------

    async def handle_call(self, call: PluginCall, *, connection: _Connection) -> bool:
        """Serve one call; whether the connection can carry another."""
        state = self.state
        conn, docker = connection.ident, connection.docker
        seq = state.seq = state.seq + 1
        started_at, started = time.time(), trio.current_time()
        state.calls_by_operation[call.operation.value] += 1
        state.in_flight += 1
        link: RetryLink | None = None
        matched = call
        if call.retry:
            # An empty body: dockerd's retry of a call whose connection was cut. Rules see the
            # volume of the call it retries; the backend gets the empty body, as it came.
            link = state.retries.retry(call, started)
            if link.retry_of is not None:
                matched = call.as_retry_of(link.volume, link.mount_id)
            log.info("%s: an empty body, dockerd's retry after a dropped connection (%s); forwarded as it came", call,
                     f"of seq {link.retry_of}" if link.retry_of is not None else link.reason)
        decision = state.engine.decide(matched, now=started, paused=state.paused)  # atomic: nothing to lock
        if decision.injected:
            log.info("injected %s on %s (rule %s): %s", decision.action, matched, decision.rule, decision.plan)
        progress = CallProgress(decision.rule, conn)
        try:
            await self.runner.run(call, decision.plan, docker, progress)
        finally:
            state.in_flight -= 1
            if progress.outcome in ("reset", "crashed"):
                state.retries.cut(seq, call, trio.current_time(), link)
            elif link is not None and link.retry_of is not None:
                state.retries.answered(link)
            state.record(CallRecord(
                started_at=started_at, seq=seq, conn=conn, operation=call.operation.value,
                volume=matched.volume, mount_id=matched.mount_id, rule=decision.rule, action=decision.action,
                forwarded=progress.forwarded, backend=progress.backend, reply=progress.reply,
                elapsed=trio.current_time() - started, retry=call.retry, outcome=progress.outcome, opts=call.opts,
                held=progress.held, rule_index=decision.rule_index, actions=decision.actions,
                volume_pattern=decision.volume_pattern,
                retry_of=link.retry_of if link is not None else None, retry_link=link.reason if link is not None else None,
            ))
        return docker.open and not self._closing

    def _next_seq(self) -> int:
        self.state.seq += 1
        return self.state.seq

    def _record_refused(self, conn: int, target: str | None, error: RequestError) -> None:
        self.state.record(CallRecord(
            started_at=time.time(), seq=self._next_seq(), conn=conn, operation=target, volume=None, mount_id=None,
            rule=None, action=None, forwarded=False, backend=None, reply=error.docker_reply(), elapsed=0.0, outcome="refused",
        ))
