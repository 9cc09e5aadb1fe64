"""Backends: where forwarded calls go, behind one async interface.

`Backend.call(call)` returns the backend's answer as a PluginReply (any status: a backend's own
errors are answers and are passed on untouched) or raises BackendError when there is no answer
(unreachable, timed out, not HTTP). A backend works while its `run()` runs (a plugin client's
deadlines are kept by it): `async with running(backend)` for a tool, the proxy runs it beside its
connections. `open_backend(spec)` builds one from a `--backend` value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol, TypeAlias, TypeVar

import trio

from chaosvol.core.errors import unwrapped
from chaosvol.core.protocol import PluginCall, PluginReply

Connector: TypeAlias = Callable[[], Awaitable[trio.abc.Stream]]


class Backend(Protocol):
    name: str

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        """The answer to `call`. With a sink, a backend that can pass a long answer on as it
        arrives may (see AnswerSink); one that cannot ignores it.

        Raises:
            BackendError: no answer (unreachable, timed out, not HTTP).
        """
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The backend's own duties (a plugin client's deadline watchdog), until cancelled;
        `call` works once this has started (`nursery.start`). A backend without any sleeps."""
        ...

    async def aclose(self) -> None: ...


B = TypeVar("B", bound=Backend)


@asynccontextmanager
async def running(backend: B) -> AsyncIterator[B]:
    """`backend`, with its duties running, closed at the end. What the body raises comes out
    as it was raised (run() raises nothing of its own: it only ever ends cancelled)."""
    try:
        with unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(backend.run)
                yield backend
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await backend.aclose()


class AnswerSink(Protocol):
    """Where a long answer can go on while it is still arriving (the daemon's connection).

    A backend that can stream (PluginClient.call_streaming) calls `begin` once the head of a long
    answer is in; if it says yes, every body byte goes to `body` as it comes, and the call still
    returns the whole reply (for the event log). If the backend then fails, half an answer has
    gone out: the caller must cut the connection rather than answer.
    """

    async def begin(self, status: int, content_type: str | None, length: int) -> bool: ...

    async def body(self, data: bytes | bytearray) -> None: ...
