"""The proxy in process over real unix sockets: the built-in backend, a separate backend plugin,
and a backend that misbehaves on purpose (slow, closing, non-200, empty, gone)."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing

from chaosvol.backends import Backend
from chaosvol.backends.client import ClientTimeouts, PluginClient
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import UsageError
from chaosvol.core.profile import PASSTHROUGH
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from tests.support.builders import (
    DOCKERD_REQUESTS,
    PODMAN_REQUESTS,
    activate,
    create,
    get,
    list_,
    mount,
    profile,
    remove,
    rule,
    unmount,
)
from tests.support.fakes import DaemonClient
from tests.support.oddbackend import OddBackend, activate_then, http

pytestmark = pytest.mark.usefixtures("deadline", "close_daemons")
_OPEN: list[DaemonClient] = []

FAST = ClientTimeouts(long=5.0, short=5.0, connect_retry_delays=(0.05, 0.1, 0.2))


@pytest.fixture
async def deadline() -> AsyncIterator[None]:
    with trio.fail_after(30):
        yield


@asynccontextmanager
async def serving(nursery: trio.Nursery, socket_path: str, backend: Backend, *rules: dict[str, Any]) -> AsyncIterator[PluginServer]:
    settings = ServeSettings("t", socket_path, backend.name, shutdown_grace=1.0)
    server = PluginServer(ProxyState(settings, backend, ChaosEngine(profile(*rules) if rules else PASSTHROUGH)))
    async with trio.open_nursery() as own:  # leaving waits until the server is done
        await own.start(server.serve)
        try:
            yield server
        finally:
            server.shut_down()


@pytest.fixture
async def close_daemons() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().stream.aclose()


async def daemon(socket_path: str) -> DaemonClient:
    client = DaemonClient(await trio.open_unix_socket(socket_path))
    _OPEN.append(client)
    return client


async def test_a_docker_volume_lifecycle_through_the_proxy_and_the_builtin_backend(short_tmp: str, nursery: trio.Nursery) -> None:
    sock = f"{short_tmp}/p.sock"
    async with serving(nursery, sock, DirectoryBackend(f"{short_tmp}/vols")):
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
        client = await daemon(sock)
        assert (await client.call(activate())).decoded() == {"Implements": ["VolumeDriver"]}
        assert (await client.call(get("v1"))).err == "no such volume: 'v1'"
        assert (await client.call(create("v1"))).err is None
        mountpoint = (await client.call(mount("v1"))).decoded()["Mountpoint"]
        assert mountpoint == f"{short_tmp}/vols/volumes/v1/_data"
        assert [v["Name"] for v in (await client.call(list_())).decoded()["Volumes"]] == ["v1"]
        assert "still mounted" in ((await client.call(remove("v1"))).err or "")
        assert (await client.call(unmount("v1"))).err is None
        assert (await client.call(remove("v1"))).err is None
    assert not os.path.exists(sock)


async def test_hundreds_of_concurrent_connections_are_all_served(short_tmp: str, nursery: trio.Nursery) -> None:
    sock = f"{short_tmp}/p.sock"
    answered = 0
    async with serving(nursery, sock, DirectoryBackend(f"{short_tmp}/vols"), rule({"delay": {"duration": "200ms"}}, op="Get")):

        async def one(i: int) -> None:
            nonlocal answered
            client = await daemon(sock)
            reply = await client.call(get(f"v{i}"))
            answered += reply.status == 500

        async with trio.open_nursery() as calls:
            for i in range(300):
                calls.start_soon(one, i)
    assert answered == 300


async def test_a_separate_backend_plugin_gets_every_call_exactly_as_sent(short_tmp: str, nursery: trio.Nursery) -> None:
    backend_sock, proxy_sock = f"{short_tmp}/b.sock", f"{short_tmp}/p.sock"
    seen: list[PluginCall] = []

    async def behave(call: PluginCall, backend: OddBackend) -> bytes:
        seen.append(call)
        if call.operation is Operation.ACTIVATE:
            return http(PluginReply.json({"Implements": ["VolumeDriver"]}))
        return http(PluginReply(200, b'{"Err":"","Extra":[1,2]}  \n', "application/x-odd"))

    odd = OddBackend(backend_sock, behave)
    await nursery.start(odd.serve)
    client_backend = PluginClient("odd", partial(trio.open_unix_socket, backend_sock), timeouts=FAST)
    async with serving(nursery, proxy_sock, client_backend):
        client = await daemon(proxy_sock)
        raw = next(s for s in DOCKERD_REQUESTS if s.label == "create-opts").raw
        for _ in range(3):
            await client.send_raw(raw)
            reply = await client.read_reply()
            assert (reply.status, reply.body, reply.content_type) == (200, b'{"Err":"","Extra":[1,2]}  \n', "application/x-odd")
    assert [c.operation for c in seen] == [Operation.ACTIVATE] + [Operation.CREATE] * 3
    assert all(c.body == b'{"Name":"v1","Opts":{"size":"5"}}\n' for c in seen[1:])
    assert dict(seen[1].headers)[b"user-agent"] == b"Go-http-client/1.1"
    assert odd.connections == 1  # keep-alive: one connection carried all four calls


async def test_podman_s_requests_reach_the_backend_with_podman_s_headers_and_bodies(short_tmp: str, nursery: trio.Nursery) -> None:
    seen: list[PluginCall] = []

    async def behave(call: PluginCall, backend: OddBackend) -> bytes:
        seen.append(call)
        if call.operation is Operation.ACTIVATE:
            return http(PluginReply.json({"Implements": ["VolumeDriver"]}))
        return http(PluginReply.json({"Err": "", "Volumes": []}))

    odd = OddBackend(f"{short_tmp}/b.sock", behave)
    await nursery.start(odd.serve)
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("odd", partial(trio.open_unix_socket, odd.path), timeouts=FAST)):
        client = await daemon(f"{short_tmp}/p.sock")
        for sample in PODMAN_REQUESTS:
            await client.send_raw(sample.raw)
            assert (await client.read_reply()).status == 200
    # Podman's Activate is answered by chaosvol; the backend got chaosvol's own, then the rest as sent.
    assert seen[0].operation is Operation.ACTIVATE
    forwarded = seen[1:]
    assert [(c.operation, c.body) for c in forwarded] == [(s.call.operation, s.call.body) for s in PODMAN_REQUESTS[1:]]
    assert all(
        [name for name, _ in c.headers] == [b"host", b"user-agent", b"content-type"] and dict(c.headers)[b"host"] == b"plugin"
        for c in forwarded
    )


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (http(PluginReply(500, b"Internal Server Error (real)\n", None)), 500, b"Internal Server Error (real)\n"),
        (http(PluginReply(200, b"", None)), 200, b""),
        (http(PluginReply(204, b"", None)), 204, b""),
        (http(PluginReply(200, b"<html>", "text/html")), 200, b"<html>"),
    ],
)
async def test_odd_backend_answers_reach_the_daemon_unchanged(short_tmp: str, nursery: trio.Nursery, answer: bytes, status: int, body: bytes) -> None:
    odd = OddBackend(f"{short_tmp}/b.sock", await activate_then(lambda call: answer))
    await nursery.start(odd.serve)
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("odd", partial(trio.open_unix_socket, odd.path), timeouts=FAST)):
        reply = await (await daemon(f"{short_tmp}/p.sock")).call(get("v"))
    assert (reply.status, reply.body) == (status, body)


async def test_a_backend_that_closes_every_connection_after_answering_still_works(short_tmp: str, nursery: trio.Nursery) -> None:
    odd = OddBackend(f"{short_tmp}/b.sock", await activate_then(lambda call: http(PluginReply.ok())), close_after_answer=True)
    await nursery.start(odd.serve)
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("odd", partial(trio.open_unix_socket, odd.path), timeouts=FAST)):
        client = await daemon(f"{short_tmp}/p.sock")
        for _ in range(5):
            await trio.sleep(0.01)  # let the close arrive while the connection idles in the pool
            assert (await client.call(remove("v"))).err is None
    assert [c.operation for c in odd.calls].count(Operation.REMOVE) == 5  # never sent twice


async def test_a_backend_that_hangs_up_without_answering_gives_an_honest_error(short_tmp: str, nursery: trio.Nursery) -> None:
    odd = OddBackend(f"{short_tmp}/b.sock", await activate_then(lambda call: None))
    await nursery.start(odd.serve)
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("realvol", partial(trio.open_unix_socket, odd.path), timeouts=FAST)):
        reply = await (await daemon(f"{short_tmp}/p.sock")).call(remove("v"))
    assert reply.status == 502
    assert reply.err == "chaosvol: backend realvol unavailable: connection closed without an answer to Remove"
    assert [c.operation for c in odd.calls].count(Operation.REMOVE) == 1


async def test_a_backend_answering_garbage_is_named_as_breaking_the_protocol(short_tmp: str, nursery: trio.Nursery) -> None:
    odd = OddBackend(f"{short_tmp}/b.sock", await activate_then(lambda call: b"SSH-2.0-OpenSSH\r\n\r\n"))
    await nursery.start(odd.serve)
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("realvol", partial(trio.open_unix_socket, odd.path), timeouts=FAST)):
        reply = await (await daemon(f"{short_tmp}/p.sock")).call(get("v"))
    assert reply.status == 502 and (reply.err or "").startswith("chaosvol: backend realvol broke the protocol: bad answer to Get")


async def test_a_slow_backend_is_waited_for_and_a_hung_one_times_out_honestly(short_tmp: str, nursery: trio.Nursery) -> None:
    async def behave(call: PluginCall, backend: OddBackend) -> bytes:
        if call.operation is Operation.ACTIVATE:
            return http(PluginReply.json({"Implements": ["VolumeDriver"]}))
        await trio.sleep(0.3 if call.volume == "slow" else 100)
        return http(PluginReply.ok())

    odd = OddBackend(f"{short_tmp}/b.sock", behave)
    await nursery.start(odd.serve)
    timeouts = ClientTimeouts(long=1.0, short=1.0)
    backend = PluginClient("realvol", partial(trio.open_unix_socket, odd.path), timeouts=timeouts)
    async with serving(nursery, f"{short_tmp}/p.sock", backend):
        client = await daemon(f"{short_tmp}/p.sock")
        assert (await client.call(remove("slow"))).err is None
        assert backend._watching  # the proxy runs one watchdog for every call's deadline
        hung = await client.call(remove("hung"))
    assert hung.status == 504 and hung.err == "chaosvol: backend realvol timed out: no answer to Remove in 1s"


async def test_a_backend_that_is_down_gives_an_honest_error_and_one_that_comes_back_is_used(short_tmp: str, nursery: trio.Nursery) -> None:
    backend_sock = f"{short_tmp}/b.sock"
    proxy_sock = f"{short_tmp}/p.sock"
    async with serving(nursery, proxy_sock, PluginClient("realvol", partial(trio.open_unix_socket, backend_sock), timeouts=FAST)):
        client = await daemon(proxy_sock)
        down = await client.call(get("v"))
        assert down.status == 502
        assert down.err == "chaosvol: backend realvol unavailable: cannot connect: No such file or directory"
        odd = OddBackend(backend_sock, await activate_then(lambda call: http(PluginReply.ok())))
        await nursery.start(odd.serve)
        assert (await client.call(get("v"))).status == 200


async def test_a_backend_started_during_the_retry_window_is_reached_without_an_error(short_tmp: str, nursery: trio.Nursery) -> None:
    backend_sock = f"{short_tmp}/b.sock"
    odd = OddBackend(backend_sock, await activate_then(lambda call: http(PluginReply.ok())))
    slow_retries = ClientTimeouts(long=5.0, short=5.0, connect_retry_delays=(0.2, 0.2, 0.2, 0.2))
    async with serving(nursery, f"{short_tmp}/p.sock", PluginClient("realvol", partial(trio.open_unix_socket, backend_sock), timeouts=slow_retries)):
        client = await daemon(f"{short_tmp}/p.sock")

        async def start_backend_later() -> None:
            await trio.sleep(0.3)
            await nursery.start(odd.serve)

        nursery.start_soon(start_backend_later)
        assert (await client.call(remove("v"))).err is None


async def test_shutdown_answers_in_flight_calls_cuts_hung_ones_and_removes_the_socket(short_tmp: str, nursery: trio.Nursery) -> None:
    sock = f"{short_tmp}/p.sock"
    settings = ServeSettings("t", sock, "builtin", shutdown_grace=1.0)
    rules = profile(rule({"delay": {"duration": "300ms"}}, op="Get"), rule("hang", op="Create"))
    server = PluginServer(ProxyState(settings, DirectoryBackend(f"{short_tmp}/vols"), ChaosEngine(rules)))
    results: dict[str, Any] = {}
    async with trio.open_nursery() as inner:
        await inner.start(server.serve)
        idle = await daemon(sock)
        await idle.call(list_())
        slow, hung = await daemon(sock), await daemon(sock)

        async def call(name: str, client: DaemonClient, request: PluginCall) -> None:
            try:
                results[name] = (await client.call(request)).status
            except (trio.BrokenResourceError, h11.RemoteProtocolError) as exc:  # the hung call is cut: the connection closes unanswered
                results[name] = type(exc).__name__

        inner.start_soon(call, "slow", slow, get("v"))
        inner.start_soon(call, "hung", hung, create("v"))
        while server.state.in_flight < 2:  # both calls read, the delay and the hang begun
            await trio.testing.wait_all_tasks_blocked()
        started = trio.current_time()
        server.shut_down()
        assert await idle.closed_without_answer()  # the idle connection closes at once...
        assert "slow" not in results  # ...while the delayed call is still in flight
    assert results == {"slow": 500, "hung": "RemoteProtocolError"}
    assert 1.0 <= trio.current_time() - started < 10.0  # the hung call was cut at the grace period, not before
    assert not os.path.exists(sock)


async def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(short_tmp: str, nursery: trio.Nursery) -> None:
    import socket as stdlib_socket

    sock = f"{short_tmp}/p.sock"
    stale = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    stale.bind(sock)
    stale.close()  # the file stays, nobody listens: a dead plugin's leftover
    async with serving(nursery, sock, DirectoryBackend(f"{short_tmp}/vols")):
        with pytest.raises(UsageError, match="another process is serving"):
            second = PluginServer(ProxyState(ServeSettings("t", sock, "x"), DirectoryBackend(f"{short_tmp}/v2"), ChaosEngine(PASSTHROUGH)))
            await nursery.start(second.serve)
        assert (await (await daemon(sock)).call(activate())).status == 200


async def test_crash_removes_the_socket_closes_every_connection_and_comes_back(short_tmp: str, nursery: trio.Nursery) -> None:
    sock = f"{short_tmp}/p.sock"
    rules = [rule({"crash": {"restart": "500ms"}}, op="Remove", times=1), rule({"delay": {"duration": "10s"}}, op="Mount")]
    async with serving(nursery, sock, DirectoryBackend(f"{short_tmp}/vols"), *rules) as server:
        bystander, idle, victim = await daemon(sock), await daemon(sock), await daemon(sock)
        await idle.call(list_())
        await bystander.send_raw(bystander.wire.request_bytes(mount("v"), b""))  # in flight, delayed
        await victim.send_raw(victim.wire.request_bytes(remove("v"), b""))
        assert await victim.closed_without_answer()
        assert await bystander.closed_without_answer() and await idle.closed_without_answer()
        assert not os.path.exists(sock)
        with trio.fail_after(5):
            while not os.path.exists(sock):
                await trio.sleep(0.05)
        assert (await (await daemon(sock)).call(remove("v"))).status == 500  # back, and the rule is spent
        assert not server.crashed


async def test_crash_without_restart_ends_the_server(short_tmp: str) -> None:
    sock = f"{short_tmp}/p.sock"
    server = PluginServer(ProxyState(ServeSettings("t", sock, "b"), DirectoryBackend(f"{short_tmp}/vols"), ChaosEngine(profile(rule("crash", op="Get")))))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        client = await daemon(sock)
        await client.send_raw(client.wire.request_bytes(get("v"), b""))
        assert await client.closed_without_answer()
    assert server.crashed and not os.path.exists(sock)


async def test_a_backend_restarted_on_the_same_path_is_reached_through_new_connections(short_tmp: str, nursery: trio.Nursery) -> None:
    backend_sock, proxy_sock = f"{short_tmp}/b.sock", f"{short_tmp}/p.sock"
    first = OddBackend(backend_sock, await activate_then(lambda call: http(PluginReply.json({"Err": "", "who": "first"}))))
    async with trio.open_nursery() as first_nursery:
        await first_nursery.start(first.serve)
        async with serving(nursery, proxy_sock, PluginClient("realvol", partial(trio.open_unix_socket, backend_sock), timeouts=FAST)):
            client = await daemon(proxy_sock)
            assert (await client.call(remove("v"))).decoded()["who"] == "first"
            first_nursery.cancel_scope.cancel()  # the backend dies; our pooled connection to it is dead
            await trio.sleep(0.05)
            second = OddBackend(backend_sock, await activate_then(lambda call: http(PluginReply.json({"Err": "", "who": "second"}))))
            await nursery.start(second.serve)
            assert (await client.call(remove("v"))).decoded()["who"] == "second"
            assert [c.operation for c in second.calls] == [Operation.REMOVE]  # no second Activate, as dockerd
