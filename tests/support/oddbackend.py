"""A scripted backend plugin on a real unix socket, to misbehave on purpose."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from chaosvol.core.protocol import PluginCall, PluginReply
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ServerWire

# What to do with one call: return bytes to send (then keep the connection), or None to close it
# without an answer.
Behaviour = Callable[[PluginCall, "OddBackend"], Awaitable[bytes | None]]


@dataclass
class OddBackend:
    path: str
    behaviour: Behaviour
    calls: list[PluginCall] = field(default_factory=list)
    connections: int = 0
    close_after_answer: bool = False

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(self.path):
            os.unlink(self.path)
        await sock.bind(self.path)
        sock.listen(128)
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            await trio.serve_listeners(self._handle, [listener])
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        wire = ServerWire()
        async with stream:
            try:
                while True:
                    event = wire.next_call()
                    if event is WireState.NEED_DATA:
                        wire.receive_data(await stream.receive_some(65536))
                        continue
                    if not isinstance(event, PluginCall):
                        return
                    self.calls.append(event)
                    answer = await self.behaviour(event, self)
                    if answer is None:
                        return
                    await stream.send_all(answer)
                    if self.close_after_answer:
                        return
                    wire = ServerWire()  # raw answers bypass h11's state: start a fresh parser
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return


def http(reply: PluginReply) -> bytes:
    """The raw bytes of a well-formed answer."""
    head = f"HTTP/1.1 {reply.status} X\r\nContent-Length: {len(reply.body)}\r\n"
    if reply.content_type:
        head += f"Content-Type: {reply.content_type}\r\n"
    return head.encode() + b"\r\n" + reply.body


async def activate_then(answer: Callable[[PluginCall], bytes | None]) -> Behaviour:
    async def behave(call: PluginCall, backend: OddBackend) -> bytes | None:
        if call.operation.value == "Activate":
            return http(PluginReply.json({"Implements": ["VolumeDriver"]}))
        return answer(call)

    return behave
