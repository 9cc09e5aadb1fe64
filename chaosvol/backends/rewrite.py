"""A backend whose Mountpoints are rewritten (chaosvol.core.mountpoints), for the managed plugin."""

from __future__ import annotations

from chaosvol.backends import Backend
from chaosvol.core.mountpoints import MountpointRewrite
from chaosvol.core.protocol import PluginCall, PluginReply


class RewritingBackend:
    def __init__(self, inner: Backend, rewrite: MountpointRewrite) -> None:
        self.inner = inner
        self.rewrite = rewrite
        self.name = f"{inner.name} (mountpoints {rewrite.source} -> {rewrite.target})"

    async def call(self, call: PluginCall) -> PluginReply:
        return self.rewrite.apply(call, await self.inner.call(call))

    async def enforce_deadlines(self) -> None:
        """The inner backend's deadline watchdog, when it has one (see PluginClient)."""
        enforce = getattr(self.inner, "enforce_deadlines", None)
        if enforce is not None:
            await enforce()

    async def aclose(self) -> None:
        await self.inner.aclose()
