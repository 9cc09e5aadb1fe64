"""The trio shell: accept connections from the daemon, read calls, ask the engine, run plans.

One task per connection; calls on one connection are served in order (HTTP/1.1), calls on
different connections concurrently. `decide()` never awaits, so it needs no lock, and no sleep
ever holds one: a delayed or hung call costs its own connection only.

Plans are walked left to right keeping "the reply so far" (see chaosvol.core.effects). Only the shell
sleeps, touches sockets or writes files. Errors by boundary:

* dockerd's bytes that are not a request we serve: an HTTP error with a JSON Err (wire.py);
* the backend without an answer: its BackendError's honest reply, naming the backend;
* anything else is our bug: logged with its traceback, that connection closed, the server goes on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal, assert_never, overload

import trio

from chaosvol import __version__
from chaosvol.backends import AnswerSink, Backend
from chaosvol.core.effects import Crash, Forward, Hang, Hold, Plan, Reply, Reset, Rewrite, Sleep
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import BackendError, RequestError
from chaosvol.core.events import BackendOutcome, CallRecord, Outcome, header_line
from chaosvol.core.profile import Profile
from chaosvol.core.protocol import ACTIVATE_BODY, LARGE_BODY, Operation, PluginCall, PluginReply
from chaosvol.core.retries import RetryLink, RetryTracker
from chaosvol.proxy.control import ControlServer
from chaosvol.proxy.eventlog import EventLog, RecentEvents
from chaosvol.proxy.holds import HoldRegistry
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.unix import UnixListener, accept_forever, open_unix_listener
from chaosvol.wire.common import WireState
from chaosvol.wire.http import Refused, ServerWire
from chaosvol.wire.streams import RECEIVE_SIZE, SocketStream

log = logging.getLogger(__name__)

# A body of LARGE_BODY or more is written after its head rather than copied into one buffer with
# it (a List of 10,000 volumes is about 870 KB: that copy costs about 35 us).
ACTIVATE_REPLY: Final = PluginReply(200, ACTIVATE_BODY)


class DockerSide:
    """The daemon's end of one connection, as a plan sees it."""

    def __init__(self, stream: trio.abc.Stream, wire: ServerWire) -> None:
        self.stream = stream
        self.wire = wire
        self.open = True

    async def send(self, reply: PluginReply) -> bool:
        """Send the answer; False when the daemon had already hung up (normal after its timeout,
        and for Podman, which closes without reading some answers)."""
        if len(reply.body) >= LARGE_BODY and (head := self.wire.reply_head(reply.status, reply.content_type, len(reply.body))) is not None:
            return await self.send_raw(head) and await self.send_raw(reply.body)
        return await self.send_raw(self.wire.reply_bytes(reply))

    async def send_raw(self, data: bytes | bytearray) -> bool:
        try:
            await self.stream.send_all(data)
        except BaseException as exc:
            self.wire.send_failed()
            self.open = False
            if isinstance(exc, (trio.BrokenResourceError, OSError)):
                return False
            raise
        return True

    async def reset(self) -> None:
        """Close without an answer."""
        self.open = False
        await trio.aclose_forcefully(self.stream)

    async def wait_until_closed(self) -> None:
        """Wait until the daemon hangs up (what it sends meanwhile is dropped)."""
        try:
            while await self.stream.receive_some(RECEIVE_SIZE):
                pass
        except trio.BrokenResourceError:
            pass
        self.open = False


class _PassOn:
    """An AnswerSink that writes a long backend answer on to the daemon as it arrives."""

    __slots__ = ("docker", "gone", "started")

    def __init__(self, docker: DockerSide) -> None:
        self.docker = docker
        self.started = False  # the head went out: the answer is the daemon's now, whatever happens
        self.gone = False  # the daemon hung up meanwhile (the rest is read, not sent)

    async def begin(self, status: int, content_type: str | None, length: int) -> bool:
        head = self.docker.wire.reply_head(status, content_type, length)
        if head is None:
            return False  # h11 has this connection: the answer is sent whole, as usual
        self.started = True
        self.gone = not await self.docker.send_raw(head)
        return True

    async def body(self, data: bytes | bytearray) -> None:
        if not self.gone:
            self.gone = not await self.docker.send_raw(data)


@dataclass(slots=True)
class _CallProgress:
    """What happened to one call so far, for its event-log record."""

    rule: str | None
    conn: int
    forwarded: bool = False
    backend: BackendOutcome | None = None
    reply: PluginReply | None = None
    outcome: Outcome = "cut"
    held: str | None = None


@dataclass(slots=True)
class _Connection:
    ident: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # cancelled only while idle
    idle: bool = False  # waiting for the next request


class PluginServer:
    """Serves one plugin socket until `shut_down()`."""

    def __init__(
        self,
        settings: ServeSettings,
        backend: Backend,
        engine: ChaosEngine,
        events: EventLog | None = None,
        *,
        seed_override: int | None = None,
    ) -> None:
        """Args:
            seed_override: `--seed`, which also applies to profiles loaded later; without it a
                loaded profile brings its own seed, or keeps the current one.
        """
        self.settings = settings
        self.backend = backend
        # A backend that can pass long answers on as they arrive (PluginClient) gets to.
        self._streaming_backend: Callable[[PluginCall, AnswerSink], Awaitable[PluginReply]] | None = getattr(
            backend, "call_streaming", None
        )
        self.engine = engine
        self.events = events
        self.seed_override = seed_override
        self.recent = RecentEvents()
        self.holds = HoldRegistry()
        self.retries = RetryTracker()
        self.paused = False  # the control socket's kill switch: every call passes through
        self.calls_by_operation: Counter[str] = Counter()
        self.in_flight = 0
        self.started_at = time.time()
        self.profile_loaded_at = time.time()
        self._seq = 0
        self._connections: dict[int, _Connection] = {}
        self._next_connection = 0
        self._closing = False
        self._accept_scope: trio.CancelScope | None = None
        self._grace = settings.shutdown_grace
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
        started = False
        control: ControlServer | None = None
        try:
            async with trio.open_nursery() as outer:
                if self.events is not None:
                    self._log_profile("header")
                    outer.start_soon(self.events.run)
                enforce_deadlines = getattr(self.backend, "enforce_deadlines", None)
                if enforce_deadlines is not None:  # one task for every backend call's deadline
                    outer.start_soon(self._until_shutdown, enforce_deadlines)
                try:
                    if self.settings.control_path is not None:
                        # It stays up through a crash with restart: it is the tester's, not the plugin's.
                        control = ControlServer(self, self.settings.control_path)
                        await outer.start(control.serve)
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
                    if control is not None:
                        control.shut_down()
                    if self.events is not None:
                        self.events.close()
                    self._helpers.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await listener.aclose()
                await self.backend.aclose()

    async def _until_shutdown(self, run: Callable[[], Awaitable[None]]) -> None:
        """Run a helper that runs until cancelled, until the connections are all done."""
        with self._helpers:
            await run()

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

    @property
    def connections(self) -> int:
        """Connections from the daemon open right now."""
        return len(self._connections)

    def load(self, profile: Profile) -> ChaosEngine:
        """Put `profile` in force at once (one assignment: a call sees the old rules or the new,
        never a mix). Rule counters start again; calls already held or delayed go on as planned."""
        seed = self.seed_override if self.seed_override is not None else profile.seed if profile.seed is not None else self.engine.seed
        self.engine = ChaosEngine(profile, seed=seed, activations=self.engine.activations)
        self.profile_loaded_at = time.time()
        self._log_profile("load")
        return self.engine

    def _log_profile(self, kind: Literal["header", "load"]) -> None:
        """The event log's line that says which chaosvol, profile and seed the records below
        come from (`header`: a run starts; `load`: another profile took over)."""
        if self.events is None:
            return
        profile = self.engine.profile
        self.events.write_line(header_line(
            kind, version=__version__, seed=self.engine.seed, profile_source=profile.source, profile_digest=profile.digest,
            rules=len(profile.rules), started_at=time.time(), name=self.settings.name, socket=self.settings.socket_path,
            backend=self.settings.backend_label,
        ))

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
        connection = _Connection(ident)
        self._connections[ident] = connection
        wire = ServerWire()
        docker = DockerSide(stream, wire)
        try:
            # One scope for the connection's life, cancelled by shut_down() only while the
            # connection waits idle for a request (a scope per wait cost 7 us a call).
            with connection.scope:
                while docker.open:
                    try:
                        event = wire.next_call()
                    except RequestError as exc:
                        log.warning("connection %d: %s; answering %d and closing", ident, exc, exc.status_hint)
                        self._record_refused(ident, None, exc)
                        await docker.send_raw(wire.error_bytes(exc))
                        return
                    if event is WireState.NEED_DATA:
                        data = await self._receive(stream, wire, connection)
                        if data is None:
                            return
                        wire.receive_data(data)
                    elif event is WireState.CLOSED:
                        return
                    elif isinstance(event, Refused):
                        log.warning("connection %d: %s", ident, event.error)
                        self._record_refused(ident, event.target, event.error)
                        if not await docker.send(event.error.docker_reply()) or not wire.keep_alive:
                            return
                    else:
                        assert isinstance(event, PluginCall)
                        await self.handle_call(event, ident, docker)
                        if self._closing or not wire.keep_alive:
                            return
        except Exception:
            log.exception("connection %d: internal error; closing this connection, serving on", ident)
        finally:
            del self._connections[ident]
            await trio.aclose_forcefully(stream)

    async def _receive(
        self, stream: trio.abc.Stream, wire: ServerWire, connection: _Connection
    ) -> bytes | bytearray | None:
        """Bytes from the daemon; None when the connection is over (closed, reset, timed out,
        or idle at shutdown)."""
        try:
            if wire.mid_request:
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

    # -- one call -----------------------------------------------------------------------------

    async def handle_call(self, call: PluginCall, conn: int, docker: DockerSide) -> None:
        self._seq += 1
        seq = self._seq
        started_at, started = time.time(), trio.current_time()
        self.calls_by_operation[call.operation.value] += 1
        self.in_flight += 1
        link: RetryLink | None = None
        matched = call
        if call.retry:
            # An empty body: dockerd's retry of a call whose connection was cut. Rules see the
            # volume of the call it retries; the backend gets the empty body, as it came.
            link = self.retries.retry(call, started)
            if link.retry_of is not None:
                matched = call.as_retry_of(link.volume, link.mount_id)
            log.info("%s: an empty body, dockerd's retry after a dropped connection (%s); forwarded as it came", call,
                     f"of seq {link.retry_of}" if link.retry_of is not None else link.reason)
        decision = self.engine.decide(matched, now=started, paused=self.paused)  # atomic: nothing to lock
        if decision.injected:
            log.info("injected %s on %s (rule %s): %s", decision.action, matched, decision.rule, decision.plan)
        progress = _CallProgress(decision.rule, conn)
        try:
            await self.run_plan(call, decision.plan, docker, progress)
        finally:
            self.in_flight -= 1
            if progress.outcome in ("reset", "crashed"):
                self.retries.cut(seq, call, trio.current_time(), link)
            elif link is not None and link.retry_of is not None:
                self.retries.answered(link)
            record = CallRecord(
                started_at,
                seq,
                conn,
                call.operation.value,
                matched.volume,
                matched.mount_id,
                decision.rule,
                decision.action,
                progress.forwarded,
                progress.backend,
                progress.reply,
                trio.current_time() - started,
                call.retry,
                progress.outcome,
                call.opts,
                progress.held,
                decision.rule_index,
                decision.actions,
                decision.volume_pattern,
                link.retry_of if link is not None else None,
                link.reason if link is not None else None,
            )
            self.recent.add(record)
            if self.events is not None:
                self.events.record(record)

    async def run_plan(self, call: PluginCall, plan: Plan, docker: DockerSide, progress: _CallProgress) -> None:
        reply: PluginReply | None = None
        for effect in plan.effects:
            match effect:
                case Forward() if effect is plan.effects[-1] and self._streaming_backend is not None:
                    # Nothing comes after: a long answer goes on to the daemon as it arrives.
                    sink = _PassOn(docker)
                    reply = await self.forward(call, progress, sink)
                    if sink.started:
                        if reply is None:  # the backend failed with half its answer sent on
                            await docker.reset()
                            progress.outcome = "reset"
                        else:
                            progress.reply = reply
                            progress.outcome = "client-gone" if sink.gone else "answered"
                        return
                case Forward():
                    reply = await self.forward(call, progress)
                case Sleep(seconds=seconds):
                    await trio.sleep(seconds)
                case Hold(timeout=timeout):
                    progress.held = "cancelled"
                    progress.held = await self.holds.park(call, rule=progress.rule, conn=progress.conn, timeout=timeout)
                case Reply(reply=injected):
                    reply = injected
                case Rewrite(edit=edit):
                    assert reply is not None  # Plan's invariant: Forward or Reply came first
                    reply = edit.apply(reply)
                case Hang():
                    await docker.wait_until_closed()  # dockerd gives up, not us
                    progress.outcome = "hung"
                    return
                case Reset():
                    await docker.reset()
                    progress.outcome = "reset"
                    return
                case Crash(after=after):
                    progress.outcome = "crashed"
                    await trio.sleep(after)
                    self.crash(effect)  # the other connections are closed by serve()
                    await docker.reset()
                    return
                case _:
                    assert_never(effect)
        assert reply is not None
        progress.reply = reply
        progress.outcome = "answered" if await docker.send(reply) else "client-gone"

    @overload
    async def forward(self, call: PluginCall, progress: _CallProgress) -> PluginReply: ...

    @overload
    async def forward(self, call: PluginCall, progress: _CallProgress, sink: _PassOn) -> PluginReply | None: ...

    async def forward(self, call: PluginCall, progress: _CallProgress, sink: _PassOn | None = None) -> PluginReply | None:
        """The backend's answer, or the honest error that names it. Activate is ours to answer.

        With a sink, a long answer may go on to the daemon as it arrives (`sink.started`); a
        backend failing after that gives None: the daemon has half an answer, no error can follow.
        """
        if call.operation is Operation.ACTIVATE:
            return ACTIVATE_REPLY
        progress.forwarded = True
        try:
            if sink is not None and self._streaming_backend is not None:
                reply = await self._streaming_backend(call, sink)
            else:
                reply = await self.backend.call(call)
        except BackendError as exc:
            log.warning("%s: %s", call, exc)
            progress.backend = BackendOutcome(error=str(exc))
            return None if sink is not None and sink.started else exc.docker_reply()
        progress.backend = BackendOutcome(reply)
        return reply

    def _record_refused(self, conn: int, target: str | None, error: RequestError) -> None:
        self._seq += 1
        record = CallRecord(
            time.time(), self._seq, conn, target, None, None, None, None, False, None, error.docker_reply(), 0.0, False, "refused"
        )
        self.recent.add(record)
        if self.events is not None:
            self.events.record(record)
