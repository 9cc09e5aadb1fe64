"""Cancellation: a call cut in the middle (shutdown, a timeout) leaves nothing behind."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from chaosvol.backends import AnswerSink
from chaosvol.backends.client import ClientTimeouts, PluginClient
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import BackendTimeout
from chaosvol.core.protocol import PluginCall, PluginReply
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ServerWire
from tests.support.builders import activate, create, get, profile, remove, rule
from tests.support.fakes import DaemonClient, RecordingBackend


async def test_a_call_cut_while_sleeping_or_hanging_closes_its_connection_and_is_logged_as_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = io.StringIO()
    events = EventLog(log, close_stream=False)
    backend = RecordingBackend()
    rules = profile(rule({"delay": {"duration": "1h"}}, op="Get"), rule("hang", op="Create"), rule("hold", op="Remove"))
    server = PluginServer(ProxyState(ServeSettings("t", "/x", "r"), backend, ChaosEngine(rules), events))
    daemons: list[DaemonClient] = []
    async with trio.open_nursery() as outer:
        outer.start_soon(events.run)
        async with trio.open_nursery() as connections:
            for call in (get("v"), create("v"), remove("v")):
                client, server_side = trio.testing.memory_stream_pair()
                connections.start_soon(server.handle_connection, server_side, len(daemons) + 1)
                daemon = DaemonClient(client)
                await daemon.send_raw(daemon.wire.request_bytes(call, b""))
                daemons.append(daemon)
            await trio.sleep(10)
            assert len(server.state.holds) == 1
            connections.cancel_scope.cancel()  # what the shutdown grace period does
        events.close()
    for daemon in daemons:
        assert await daemon.closed_without_answer()
    assert backend.calls == [] and server.state.in_flight == 0 and len(server.state.holds) == 0
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert sorted((r["op"], r["outcome"], r["reply"], r["held"]) for r in records) == [
        ("Create", "cut", None, None),
        ("Get", "cut", None, None),
        ("Remove", "cut", None, "cancelled"),
    ]


async def watchdog(client: PluginClient, nursery: trio.Nursery) -> None:
    """Deadlines enforced by the client's watchdog task, as the proxy runs it."""
    nursery.start_soon(client.run)
    await trio.testing.wait_all_tasks_blocked()


async def test_a_client_whose_watchdog_is_not_running_refuses_calls(nursery: trio.Nursery) -> None:
    client = PluginClient("silent", silent_connector(nursery), timeouts=ClientTimeouts(long=5, short=5))
    with pytest.raises(RuntimeError, match=r"backend silent: call\(\) while run\(\) is not running"):
        await client.call(get("v"))


def silent_connector(nursery: trio.Nursery, sides: list[trio.abc.Stream] | None = None) -> Callable[[], Awaitable[trio.abc.Stream]]:
    """Connections to a backend that answers Activate and nothing else (the backend's ends go
    to `sides`)."""

    async def connect() -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        if sides is not None:
            sides.append(theirs)
        nursery.start_soon(silent_backend, theirs)
        return ours

    async def silent_backend(stream: trio.abc.Stream) -> None:
        wire = ServerWire()
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return  # we were hung up on: the proxy closed the connection
            wire.receive_data(data)
            event = wire.next_call()
            if event is not WireState.NEED_DATA and event.operation.value == "Activate":  # type: ignore[union-attr]
                await stream.send_all(wire.reply_bytes(PluginReply.json({"Implements": ["VolumeDriver"]})))

    return connect


async def test_a_backend_call_that_times_out_never_returns_its_connection_to_the_pool(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    backend_sides: list[trio.abc.Stream] = []
    client = PluginClient("silent", silent_connector(nursery, backend_sides), timeouts=ClientTimeouts(long=5, short=5))
    await watchdog(client, nursery)
    try:
        await client.call(get("v"))
        raise AssertionError("a silent backend answered")
    except BackendTimeout as exc:
        assert str(exc) == "backend silent timed out: no answer to Get in 5s"
    assert trio.current_time() == 5.0
    await trio.testing.wait_all_tasks_blocked()
    assert len(backend_sides) == 1 and client._idle == []
    await client.aclose()


async def test_activate_is_answered_even_when_the_backend_hangs(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    class Hung(RecordingBackend):
        async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
            await trio.sleep_forever()

    server = PluginServer(ProxyState(ServeSettings("t", "/x", "r"), Hung(), ChaosEngine(profile())))
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_connection, server_side, 1)
    reply = await DaemonClient(client).call(activate())
    assert reply.decoded() == {"Implements": ["VolumeDriver"]} and trio.current_time() == 0.0


async def test_a_short_deadline_after_a_long_one_still_ends_on_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client = PluginClient("silent", silent_connector(nursery), timeouts=ClientTimeouts(long=50, short=5))
    await watchdog(client, nursery)
    ended: dict[str, float] = {}

    async def call(request: PluginCall) -> None:
        with pytest.raises(BackendTimeout):
            await client.call(request)
        ended[request.operation.value] = trio.current_time()

    async with trio.open_nursery() as calls:
        calls.start_soon(call, create("v"))  # 50 s: the watchdog sleeps until then...
        await trio.sleep(1)
        calls.start_soon(call, get("v"))  # ...and this one must wake it: 5 s from now
        await trio.testing.wait_all_tasks_blocked()
        assert len(client._watched) == 2  # the watchdog keeps both
    assert ended == {"Get": 6.0, "Create": 50.0}
    await client.aclose()


async def test_connect_retries_stop_at_the_deadline(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    async def absent() -> trio.abc.Stream:
        raise FileNotFoundError(2, "No such file or directory")

    client = PluginClient("absent", absent, timeouts=ClientTimeouts(long=3, short=3, connect_retry_delays=(1.0, 2.0, 4.0)))
    await watchdog(client, nursery)
    with pytest.raises(BackendTimeout, match="no answer to Get in 3s"):
        await client.call(get("v"))
    assert trio.current_time() == 3.0
