"""Cancellation: a call cut in the middle (shutdown, a timeout) leaves nothing behind."""

from __future__ import annotations

import io
import json

import trio
import trio.testing

from chaosvol.backends.client import ClientTimeouts, PluginClient
from chaosvol.engine import ChaosEngine
from chaosvol.errors import BackendTimeout
from chaosvol.eventlog import EventLog
from chaosvol.protocol import PluginReply
from chaosvol.server import PluginServer
from chaosvol.settings import ServeSettings
from chaosvol.wire import ServerWire, WireState
from tests.support.builders import activate, create, get, profile, remove, rule
from tests.support.fakes import DaemonClient, RecordingBackend


async def test_a_call_cut_while_sleeping_or_hanging_closes_its_connection_and_is_logged_as_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = io.StringIO()
    events = EventLog(log, close_stream=False)
    backend = RecordingBackend()
    rules = profile(rule({"delay": {"duration": "1h"}}, op="Get"), rule("hang", op="Create"), rule("hold", op="Remove"))
    server = PluginServer(ServeSettings("t", "/x", "r"), backend, ChaosEngine(rules), events)
    daemons = []
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
            assert len(server.holds) == 1
            connections.cancel_scope.cancel()  # what the shutdown grace period does
        events.close()
    for daemon in daemons:
        assert await daemon.closed_without_answer()
    assert backend.calls == [] and server.in_flight == 0 and len(server.holds) == 0
    records = [json.loads(line) for line in log.getvalue().splitlines()]
    assert sorted((r["op"], r["outcome"], r["reply"], r["held"]) for r in records) == [
        ("Create", "cut", None, None),
        ("Get", "cut", None, None),
        ("Remove", "cut", None, "cancelled"),
    ]


async def test_a_backend_call_that_times_out_never_returns_its_connection_to_the_pool(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    backend_sides: list[trio.abc.Stream] = []

    async def connect() -> trio.abc.Stream:
        ours, theirs = trio.testing.memory_stream_pair()
        backend_sides.append(theirs)
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

    client = PluginClient("silent", connect, timeouts=ClientTimeouts(long=5, short=5))
    try:
        await client.call(get("v"))
        raise AssertionError("a silent backend answered")
    except BackendTimeout as exc:
        assert str(exc) == "backend silent timed out: no answer to Get in 5s"
    assert trio.current_time() == 5.0
    await trio.testing.wait_all_tasks_blocked()
    assert len(backend_sides) == 1 and client._idle == []  # noqa: SLF001  the broken connection is gone
    await client.aclose()


async def test_activate_is_answered_even_when_the_backend_hangs(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    class Hung(RecordingBackend):
        async def call(self, call):  # type: ignore[no-untyped-def]
            await trio.sleep_forever()

    server = PluginServer(ServeSettings("t", "/x", "r"), Hung(), ChaosEngine(profile()))
    client, server_side = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_connection, server_side, 1)
    reply = await DaemonClient(client).call(activate())
    assert reply.decoded() == {"Implements": ["VolumeDriver"]} and trio.current_time() == 0.0
