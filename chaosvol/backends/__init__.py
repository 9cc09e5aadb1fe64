"""Backends: where forwarded calls go, behind one async interface.

`Backend.call(call)` returns the backend's answer as a PluginReply (any status: a backend's own
errors are answers and are passed on untouched) or raises BackendError when there is no answer
(unreachable, timed out, not HTTP). `open_backend(spec)` builds one from a `--backend` value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias

import trio

from chaosvol.core.protocol import PluginCall, PluginReply

Connector: TypeAlias = Callable[[], Awaitable[trio.abc.Stream]]


class Backend(Protocol):
    name: str

    async def call(self, call: PluginCall) -> PluginReply: ...

    async def aclose(self) -> None: ...


class AnswerSink(Protocol):
    """Where a long answer can go on while it is still arriving (the daemon's connection).

    A backend that can stream (PluginClient.call_streaming) calls `begin` once the head of a long
    answer is in; if it says yes, every body byte goes to `body` as it comes, and the call still
    returns the whole reply (for the event log). If the backend then fails, half an answer has
    gone out: the caller must cut the connection rather than answer.
    """

    async def begin(self, status: int, content_type: str | None, length: int) -> bool: ...

    async def body(self, data: bytes | bytearray) -> None: ...
