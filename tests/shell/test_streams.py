"""chaosvol's socket stream and unix listener: trio's guarantees, on real sockets."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.lowlevel
import trio.testing

from chaosvol.proxy.unix import open_unix_listener
from chaosvol.wire.streams import SocketStream, open_unix_stream


def pair() -> tuple[SocketStream, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setblocking(False)
    return SocketStream(ours), theirs


async def closing_wakes(nursery: trio.Nursery, wait: Callable[[], Awaitable[object]], close: Callable[[], Awaitable[None]]) -> list[type[BaseException]]:
    """What a task blocked in `wait()` gets when `close()` is called meanwhile."""
    outcome: list[type[BaseException]] = []

    async def waiter() -> None:
        try:
            await wait()
        except trio.ClosedResourceError as exc:
            outcome.append(type(exc))

    nursery.start_soon(waiter)
    await trio.testing.wait_all_tasks_blocked()
    await close()
    await trio.testing.wait_all_tasks_blocked()
    return outcome


async def test_a_large_write_to_a_slow_reader_arrives_whole_and_in_order() -> None:
    stream, peer = pair()
    data = os.urandom(4 * 1024 * 1024)  # far more than the socket buffer holds
    received = bytearray()

    async def read_slowly() -> None:
        while len(received) < len(data):
            await trio.lowlevel.wait_readable(peer)
            received.extend(peer.recv(65536))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_slowly)
        await stream.send_all(data)
    assert bytes(received) == data
    await stream.aclose()
    peer.close()


async def test_every_receive_is_a_checkpoint_even_with_data_waiting() -> None:
    stream, peer = pair()
    peer.send(b"POST /VolumeDriver.Get HTTP/1.1\r\n" * 10)
    with trio.testing.assert_checkpoints():
        assert await stream.receive_some(10) == b"POST /Volu"  # a pipelining client cannot starve the others
    with trio.testing.assert_no_checkpoints():
        await stream.send_all(b"answer")  # a write that fits does not yield: the receive that follows will
    await stream.aclose()
    peer.close()


async def test_a_receive_cancelled_while_waiting_loses_nothing() -> None:
    stream, peer = pair()
    with trio.move_on_after(0.05):
        await stream.receive_some()
    peer.send(b"next request")
    assert await stream.receive_some() == b"next request"
    await stream.aclose()
    peer.close()


async def test_a_cancelled_receive_with_data_waiting_leaves_the_data() -> None:
    stream, peer = pair()
    peer.send(b"kept")
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await stream.receive_some()
    assert await stream.receive_some() == b"kept"
    await stream.aclose()
    peer.close()


async def test_end_of_stream_reset_and_broken_pipe_are_trio_errors_with_the_os_error_as_cause() -> None:
    stream, peer = pair()
    peer.close()
    assert await stream.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError) as broken:
        await stream.send_all(b"x" * 1024)
    assert isinstance(broken.value.__cause__, OSError) and broken.value.__cause__.errno == errno.EPIPE
    await stream.aclose()

    stream, peer = pair()
    await stream.send_all(b"a request the peer never reads")
    peer.close()  # closing with unread data resets the connection
    with pytest.raises(trio.BrokenResourceError) as reset:
        await stream.receive_some()
    assert isinstance(reset.value.__cause__, OSError) and reset.value.__cause__.errno == errno.ECONNRESET
    await stream.aclose()


async def test_closing_wakes_a_waiting_receive_and_later_calls_say_closed(nursery: trio.Nursery) -> None:
    stream, peer = pair()
    assert await closing_wakes(nursery, stream.receive_some, stream.aclose) == [trio.ClosedResourceError]
    for operation in (stream.receive_some(), stream.send_all(b"x"), stream.wait_send_all_might_not_block()):
        with pytest.raises(trio.ClosedResourceError):
            await operation
    await stream.aclose()  # twice is fine
    peer.close()


async def test_the_listener_accepts_our_streams_and_a_close_ends_a_waiting_accept(short_tmp: str, nursery: trio.Nursery) -> None:
    path = f"{short_tmp}/l.sock"
    listener = await open_unix_listener(path)
    client = await open_unix_stream(path)
    server = await listener.accept()
    assert isinstance(server, SocketStream)
    await client.send_all(b"ping")
    assert await server.receive_some() == b"ping"
    await client.aclose()
    await server.aclose()

    assert await closing_wakes(nursery, listener.accept, listener.aclose) == [trio.ClosedResourceError]
    assert not os.path.exists(path)


async def test_connecting_to_nothing_is_the_os_error_the_backend_client_retries_on(short_tmp: str) -> None:
    with pytest.raises(FileNotFoundError):
        await open_unix_stream(f"{short_tmp}/absent.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(f"{short_tmp}/dead.sock")
    dead.close()
    with pytest.raises(ConnectionRefusedError):
        await open_unix_stream(f"{short_tmp}/dead.sock")
