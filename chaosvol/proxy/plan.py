"""The plan runner: one path for every call, pass-through or faulted.

A plan (chaosvol.core.effects) is walked left to right keeping "the reply so far". Only here does
a plan sleep, wait for the daemon, or reach the backend. A long backend answer goes on to the
daemon as it arrives when nothing in the plan comes after its Forward: that is a property of the
Forward step (it is given the daemon's connection as a sink), not a second path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, assert_never

import trio

from chaosvol.core.effects import Crash, Forward, Hang, Hold, Plan, Reply, Reset, Rewrite, Sleep
from chaosvol.core.errors import BackendError
from chaosvol.core.events import BackendOutcome, Outcome
from chaosvol.core.protocol import ACTIVATE_BODY, LARGE_BODY, Operation, PluginCall, PluginReply
from chaosvol.proxy.state import ProxyState
from chaosvol.wire.http import ServerWire
from chaosvol.wire.streams import RECEIVE_SIZE

log = logging.getLogger("chaosvol.proxy.server")

ACTIVATE_REPLY: Final = PluginReply(200, ACTIVATE_BODY)


class DockerSide:
    """The daemon's end of one connection, as a plan sees it."""

    __slots__ = ("open", "stream", "wire")

    def __init__(self, stream: trio.abc.Stream, wire: ServerWire) -> None:
        self.stream = stream
        self.wire = wire
        self.open = True

    async def send(self, reply: PluginReply) -> bool:
        """Send the answer; False when the daemon had already hung up (normal after its timeout,
        and for Podman, which closes without reading some answers). A body of LARGE_BODY or more
        is written after its head rather than copied into one buffer with it (a List of 10,000
        volumes is about 870 KB: that copy costs about 35 us)."""
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


class PassOn:
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
class CallProgress:
    """What happened to one call so far, for its event-log record."""

    rule: str | None
    conn: int
    forwarded: bool = False
    backend: BackendOutcome | None = None
    reply: PluginReply | None = None
    outcome: Outcome = "cut"
    held: str | None = None


class PlanRunner:
    """Carries out plans against the daemon's connection and the backend in use."""

    def __init__(self, state: ProxyState, crash: Callable[[Crash], None]) -> None:
        """Args:
            crash: what a Crash effect calls to take the whole plugin down (the server's).
        """
        self.state = state
        self.crash = crash

    async def run(self, call: PluginCall, plan: Plan, docker: DockerSide, progress: CallProgress) -> None:
        reply: PluginReply | None = None
        last = plan.effects[-1]
        for effect in plan.effects:
            match effect:
                case Forward():
                    sink = PassOn(docker) if effect is last else None
                    reply = await self.forward(call, progress, sink)
                    if sink is not None and sink.started:  # the answer went on as it arrived
                        if reply is None:  # the backend failed with half its answer sent on
                            await docker.reset()
                            progress.outcome = "reset"
                        else:
                            progress.reply = reply
                            progress.outcome = "client-gone" if sink.gone else "answered"
                        return
                case Sleep(seconds=seconds):
                    await trio.sleep(seconds)
                case Hold(timeout=timeout):
                    progress.held = "cancelled"
                    progress.held = await self.state.holds.park(call, rule=progress.rule, conn=progress.conn, timeout=timeout)
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
                    self.crash(effect)  # the other connections are closed by the server
                    await docker.reset()
                    return
                case _:
                    assert_never(effect)
        assert reply is not None  # Plan's invariant: a plan that answers has a Forward or a Reply
        progress.reply = reply
        progress.outcome = "answered" if await docker.send(reply) else "client-gone"

    async def forward(self, call: PluginCall, progress: CallProgress, sink: PassOn | None) -> PluginReply | None:
        """The backend's answer, or the honest error that names it; None only when the backend
        failed after part of its answer went on through `sink` (no error can follow it).

        dockerd's Activate is answered here: it is the proxy's own handshake (the backend was
        activated by the client, on its own connection)."""
        if call.operation is Operation.ACTIVATE:
            return ACTIVATE_REPLY
        progress.forwarded = True
        try:
            reply = await self.state.backend.call(call, sink)
        except BackendError as exc:
            log.warning("%s: %s", call, exc)
            progress.backend = BackendOutcome(error=str(exc))
            return None if sink is not None and sink.started else exc.docker_reply()
        progress.backend = BackendOutcome(reply)
        return reply
