"""The accept loop both servers share: it waits out running out of descriptors or memory, as
trio's serve_listeners does, and raises anything else instead of spinning on it."""

from __future__ import annotations

import errno
from typing import Any

import pytest
import trio
import trio.testing

from chaosvol.proxy.unix import accept_forever


class Listener:
    """accept() gives each of `outcomes` in turn: an exception to raise, or a stream to return."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def accept(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def test_out_of_descriptors_is_waited_out_and_the_next_connection_served(autojump_clock: trio.testing.MockClock) -> None:
    listener = Listener(OSError(errno.EMFILE, "Too many open files"), OSError(errno.ENOBUFS, "No buffer space"), "conn-1",
                        OSError(errno.EACCES, "Permission denied"))
    handled: list[Any] = []
    started = trio.current_time()
    with pytest.raises(OSError) as raised:
        await accept_forever(listener, handled.append, what="test")  # type: ignore[arg-type]
    assert handled == ["conn-1"]
    assert raised.value.errno == errno.EACCES  # not a capacity problem: raised, not retried
    assert listener.calls == 4 and trio.current_time() - started == pytest.approx(0.2)  # two waits of 100 ms


async def test_a_closed_listener_ends_the_loop(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(trio.ClosedResourceError):
        await accept_forever(Listener(trio.ClosedResourceError()), lambda _: None, what="test")  # type: ignore[arg-type]
