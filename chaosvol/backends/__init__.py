"""Backends: where forwarded calls go, behind one async interface.

`Backend.call(call)` returns the backend's answer as a PluginReply (any status: a backend's own
errors are answers and are passed on untouched) or raises BackendError when there is no answer
(unreachable, timed out, not HTTP). `open_backend(spec)` builds one from a `--backend` value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias

import trio

from chaosvol.protocol import PluginCall, PluginReply

Connector: TypeAlias = Callable[[], Awaitable[trio.abc.Stream]]


class Backend(Protocol):
    name: str

    async def call(self, call: PluginCall) -> PluginReply: ...

    async def aclose(self) -> None: ...
