"""--backend values, and finding legacy plugins by name as dockerd does."""

from __future__ import annotations

import os
from typing import Any

import pytest

from chaosvol.backends import running
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.spec import open_backend
from chaosvol.core.errors import UsageError


def test_backend_specs_are_checked(short_tmp: str) -> None:
    with pytest.raises(UsageError, match="unknown scheme 'ftp'"):
        open_backend("ftp://x")
    with pytest.raises(UsageError, match="needs a host and a port"):
        open_backend("tcp://localhost")
    with pytest.raises(UsageError, match="not a plugin name or address"):
        open_backend("no such/name")
    with pytest.raises(UsageError, match="own socket"):
        open_backend(f"unix://{short_tmp}/p.sock", own_socket=f"{short_tmp}/p.sock")
    assert isinstance(open_backend(f"builtin:{short_tmp}/v"), DirectoryBackend)


def test_plugin_names_are_found_the_way_dockerd_finds_them(short_tmp: str, tmp_path: Any) -> None:
    import socket as stdlib_socket

    from chaosvol.backends.spec import find_plugin

    sockets, specs = tmp_path / "run", tmp_path / "etc"
    (sockets / "nested").mkdir(parents=True)
    specs.mkdir()
    listener = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    listener.bind(f"{short_tmp}/n.sock")
    os.symlink(f"{short_tmp}/n.sock", sockets / "nested" / "nested.sock")
    (specs / "tcpvol.spec").write_text("tcp://127.0.0.1:9876\n")
    (specs / "jsonvol.json").write_text('{"Name": "ignored", "Addr": "unix:///run/x.sock"}')
    try:
        assert find_plugin("nested", sockets, (specs,)).path == str(sockets / "nested" / "nested.sock")
        assert str(find_plugin("tcpvol", sockets, (specs,))) == "tcp://127.0.0.1:9876"
        assert str(find_plugin("jsonvol", sockets, (specs,))) == "unix:///run/x.sock"
        with pytest.raises(FileNotFoundError, match="no plugin named 'ghost'"):
            find_plugin("ghost", sockets, (specs,))
    finally:
        listener.close()


def _refused_tcp_port() -> int:
    import socket as stdlib_socket

    with stdlib_socket.socket() as probe:  # bound, never listening: a connect is refused
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("kind", ["unix", "tcp"])
async def test_a_refused_backend_is_retried_on_dockerds_schedule_and_said_the_same_way_for_every_kind(
    kind: str, short_tmp: str, autojump_clock: Any
) -> None:
    import trio

    from chaosvol.backends.client import ClientTimeouts
    from chaosvol.core.errors import BackendUnavailable
    from tests.support.builders import create

    address = f"unix://{short_tmp}/absent.sock" if kind == "unix" else f"tcp://127.0.0.1:{_refused_tcp_port()}"
    if kind == "unix":  # a socket file nobody listens on: refused, as a dead plugin's socket is
        import socket as stdlib_socket

        with stdlib_socket.socket(stdlib_socket.AF_UNIX) as dead:
            dead.bind(f"{short_tmp}/absent.sock")
    backend = open_backend(address, timeouts=ClientTimeouts(long=30, short=30, connect_retry_delays=(1.0, 2.0, 4.0, 8.0)))
    started = trio.current_time()
    with pytest.raises(BackendUnavailable) as raised:
        async with running(backend):
            await backend.call(create("v"))
    assert raised.value.reason == "cannot connect: Connection refused"
    assert trio.current_time() - started == pytest.approx(15.0, abs=0.5)  # 1 + 2 + 4 + 8 s, as dockerd


async def test_a_tcp_backend_that_comes_up_during_the_retries_is_reached(nursery: Any) -> None:
    import h11
    import trio

    from chaosvol.backends.client import ClientTimeouts
    from tests.support.builders import remove

    async def plugin(stream: trio.SocketStream) -> None:  # a volume plugin that does nothing
        connection = h11.Connection(h11.SERVER)
        target = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some()
                if not data:
                    return
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                target = event.target
            elif isinstance(event, h11.EndOfMessage):
                body = b'{"Implements": ["VolumeDriver"]}' if target == b"/Plugin.Activate" else b'{"Err": ""}'
                await stream.send_all(connection.send(h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))])) or b"")
                await stream.send_all((connection.send(h11.Data(data=body)) or b"") + (connection.send(h11.EndOfMessage()) or b""))
                connection.start_next_cycle()

    port = _refused_tcp_port()
    backend = open_backend(f"tcp://127.0.0.1:{port}", timeouts=ClientTimeouts(long=5, short=5, connect_retry_delays=(0.2, 0.2, 0.2)))

    async def serve_later() -> None:
        await trio.sleep(0.3)
        await trio.serve_tcp(plugin, port, host="127.0.0.1")

    nursery.start_soon(serve_later)
    with trio.fail_after(10):
        async with running(backend):
            assert (await backend.call(remove("v"))).err is None
