"""The built-in backend with one bug, chosen by the conform check that must catch it.

Each bug is the smallest change to a correct plugin that breaks what one check looks at, and
nothing another check looks at (where a real plugin's bug would show in several checks, it is
aimed at the names that check uses), so that a test can say: this check, and only it, fails.
"""

from __future__ import annotations

import socket
from typing import Final

import trio

from chaosvol.backends import AnswerSink
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.core.protocol import Operation, PluginCall, PluginReply, decode_first_json_value
from chaosvol.wire.common import WireState
from chaosvol.wire.http import Refused, ServerWire

BUGS: Final = (
    "activate", "capabilities", "create-get-list", "create-opts-null", "create-opts-empty", "create-opts-absent",
    "create-opts-values",
    "create-idempotent", "get-unknown", "remove", "remove-unknown", "mount-path", "mount-refcount",
    "remove-while-mounted", "empty-body", "bad-json", "names", "concurrency", "latency",
)


class BrokenBackend(DirectoryBackend):
    def __init__(self, root: str, bug: str) -> None:
        super().__init__(root)
        assert bug in BUGS, bug
        self.bug = bug
        self.creating = 0

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        broken = await self._broken(call)
        return broken if broken is not None else await super().call(call)

    async def _broken(self, call: PluginCall) -> PluginReply | None:
        op, bug, name = call.operation, self.bug, call.volume or ""
        try:
            body = decode_first_json_value(call.body) if call.body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        opts = body.get("Opts", "absent") if isinstance(body, dict) else "absent"
        if bug == "activate" and op is Operation.ACTIVATE:
            return PluginReply.json({"Implements": []})
        if bug == "capabilities" and op is Operation.CAPABILITIES:
            return PluginReply.json({"Capabilities": {"Scope": "planet"}})
        if bug == "create-get-list" and op is Operation.LIST:
            reply = await super().call(call)
            volumes = [v for v in reply.decoded()["Volumes"] if "cgl" not in v["Name"]]
            return PluginReply.json({"Volumes": volumes, "Err": ""})
        if op is Operation.CREATE and (
            (bug == "create-opts-null" and opts is None) or (bug == "create-opts-empty" and opts == {})
            or (bug == "create-opts-absent" and opts == "absent")
            or (bug == "create-opts-values" and isinstance(opts, dict) and opts)
        ):
            return PluginReply.error(f"bad Opts: {opts!r}")
        if bug == "create-idempotent" and op is Operation.CREATE and name in self._volumes:
            return PluginReply.error(f"volume {name} already exists")
        if bug == "get-unknown" and op is Operation.GET and "never-created" in name:
            return PluginReply.json({"Volume": {"Name": name, "Mountpoint": "/nowhere"}, "Err": ""})
        if bug == "remove" and op is Operation.REMOVE and name in self._volumes and not self._volumes[name].mounts:
            return PluginReply.ok()  # says done, does nothing
        if bug == "remove-unknown" and op is Operation.REMOVE and name and name not in self._volumes:
            return await super().call(PluginCall.build(Operation.CREATE, name, opts={}))
        if bug == "mount-path" and op is Operation.MOUNT:
            reply = await super().call(call)
            return reply if reply.is_error else PluginReply.json({"Mountpoint": f"/nonexistent/{name}", "Err": ""})
        if bug == "mount-refcount" and op is Operation.UNMOUNT and name in self._volumes:
            state = self._volumes[name]
            if call.mount_id not in state.mounts and state.mounts:
                state.mounts.popitem()  # counted per volume, IDs ignored: any Unmount takes one off
                self._save(name, state)
                return PluginReply.ok()
        if bug == "remove-while-mounted" and op is Operation.REMOVE and name in self._volumes:
            self._volumes[name].mounts.clear()
        if bug == "empty-body" and op is Operation.CREATE and call.retry:
            return PluginReply.ok()
        if bug == "bad-json" and call.body and body is None and op is not Operation.ACTIVATE:
            return PluginReply.ok()
        if bug == "names" and op is Operation.CREATE and "/" in name:
            return PluginReply.ok()  # "created" (and a real one would write outside its root)
        if bug == "concurrency" and op is Operation.CREATE:
            if self.creating:
                return PluginReply.error("busy: another Create is running")
            self.creating += 1
            try:
                await trio.sleep(0.05)
                return await super().call(call)
            finally:
                self.creating -= 1
        if bug == "latency" and op is Operation.GET and "cgl" in name:
            await trio.sleep(5.5)
        return None


async def serve(path: str, backend: DirectoryBackend, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `backend` on a unix socket as a plugin would: every call answered by the backend,
    Activate included (chaosvol's own server answers that one itself)."""
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listener.bind(path)
    listener.listen(64)

    async def connection(stream: trio.SocketStream) -> None:
        wire = ServerWire()
        async with stream:
            while True:
                event = wire.next_call()
                if event is WireState.NEED_DATA:
                    try:
                        wire.receive_data(await stream.receive_some(65536))
                    except trio.BrokenResourceError:
                        return
                elif event is WireState.CLOSED or isinstance(event, Refused):
                    return
                else:
                    try:
                        await stream.send_all(wire.reply_bytes(await backend.call(event)))
                    except trio.BrokenResourceError:
                        return

    task_status.started()
    await trio.serve_listeners(connection, [trio.SocketListener(listener)])
