"""A backend whose Mountpoints are rewritten (chaosvol.core.mountpoints), for the managed plugin."""

from __future__ import annotations

import trio

from chaosvol.backends import AnswerSink, Backend
from chaosvol.core.mountpoints import MountpointRewrite
from chaosvol.core.protocol import PluginCall, PluginReply


class RewritingBackend:
    def __init__(self, inner: Backend, rewrite: MountpointRewrite) -> None:
        self.inner = inner
        self.rewrite = rewrite
        self.name = f"{inner.name} (mountpoints {rewrite.source} -> {rewrite.target})"

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        """The inner backend's answer, rewritten: whole, so never passed on as it arrives."""
        return self.rewrite.apply(call, await self.inner.call(call))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.inner.run(task_status=task_status)

    async def aclose(self) -> None:
        await self.inner.aclose()
