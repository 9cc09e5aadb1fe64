"""Backends and clients for tests: a recording backend, a scripted one, and a daemon-side client."""

from __future__ import annotations

from collections.abc import Callable

import trio

from chaosvol.backends import AnswerSink
from chaosvol.core.errors import BackendError
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ClientWire


class RecordingBackend:
    """Answers every call with `answer(call)` (default: success) and records what it got."""

    name = "recording"

    def __init__(self, answer: Callable[[PluginCall], PluginReply] | None = None) -> None:
        self.calls: list[PluginCall] = []
        self._answer = answer or _default_answer
        self.closed = False

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        self.calls.append(call)
        await trio.lowlevel.checkpoint()
        return self._answer(call)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


class FailingBackend(RecordingBackend):
    def __init__(self, error: BackendError) -> None:
        super().__init__()
        self.error = error

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        self.calls.append(call)
        await trio.lowlevel.checkpoint()
        raise self.error


def _default_answer(call: PluginCall) -> PluginReply:
    if call.operation is Operation.MOUNT or call.operation is Operation.PATH:
        return PluginReply.json({"Mountpoint": f"/data/{call.volume}", "Err": ""})
    if call.operation is Operation.GET:
        return PluginReply.json({"Volume": {"Name": call.volume, "Mountpoint": f"/data/{call.volume}"}, "Err": ""})
    if call.operation is Operation.LIST:
        return PluginReply.json({"Volumes": [{"Name": "a"}, {"Name": "b"}], "Err": ""})
    if call.operation is Operation.CAPABILITIES:
        return PluginReply.json({"Capabilities": {"Scope": "local"}})
    return PluginReply.ok()


class DaemonClient:
    """The daemon's side of one connection: sends calls as dockerd does, reads answers."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.wire = ClientWire()

    async def call(self, call: PluginCall) -> PluginReply:
        await self.stream.send_all(self.wire.request_bytes(call, b""))
        return await self.read_reply()

    async def read_reply(self) -> PluginReply:
        while True:
            reply = self.wire.next_reply()
            if reply is WireState.NEED_DATA:
                self.wire.receive_data(await self.stream.receive_some(65536))
                continue
            assert isinstance(reply, PluginReply)
            return reply

    async def closed_without_answer(self) -> bool:
        """True when the server closes the connection without sending a byte."""
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            return True
        return data == b""

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are; `read_reply()` then reads the one answer they get."""
        self.wire = ClientWire()
        self.wire.request_bytes(PluginCall.build(Operation.LIST), b"")  # expect an answer now
        await self.stream.send_all(data)

    async def read_raw(self) -> bytes:
        chunks = []
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)
