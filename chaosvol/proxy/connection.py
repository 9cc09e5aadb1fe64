"""One HTTP/1.1 connection on a socket chaosvol serves: the loop the plugin socket and the
control socket share. What differs (how bytes are read, what a request becomes, how a refusal
is answered and recorded) is given by the caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from chaosvol.core.errors import RequestError
from chaosvol.wire.common import WireState
from chaosvol.wire.http import Refused, ServerSide

R = TypeVar("R")


async def serve_connection(
    wire: ServerSide[R],
    receive: Callable[[], Awaitable[bytes | bytearray | None]],
    on_request: Callable[[R], Awaitable[bool]],
    on_refused: Callable[[Refused], Awaitable[bool]],
    on_bad_request: Callable[[RequestError], Awaitable[None]],
) -> None:
    """Hand each request `wire` reads to `on_request`, in order (HTTP/1.1: one at a time), until
    the peer closes, `receive` says the connection is over (None), a handler says stop (False),
    or the wire cannot keep the connection alive.

    `on_refused` answers a complete request the wire refuses while keeping the connection (404,
    405); `on_bad_request` answers bytes that break it (400, 413, 431): the connection ends.
    """
    while True:
        try:
            event = wire.next_call()
        except RequestError as exc:
            await on_bad_request(exc)
            return
        if event is WireState.NEED_DATA:
            data = await receive()
            if data is None:
                return
            wire.receive_data(data)
        elif event is WireState.CLOSED:
            return
        elif isinstance(event, Refused):
            if not await on_refused(event) or not wire.keep_alive:
                return
        elif not await on_request(event) or not wire.keep_alive:
            return
