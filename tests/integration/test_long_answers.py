"""Long backend answers (a List of thousands of volumes) go on to the daemon as they arrive;
the daemon gets the very bytes, a rule that rewrites the answer still sees it whole, and a backend
that dies half-way leaves the daemon a cut connection and the event log the reason."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from chaosvol.backends.client import ClientTimeouts, PluginClient
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.profile import PASSTHROUGH
from chaosvol.core.protocol import LARGE_BODY, PluginCall, PluginReply
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from chaosvol.wire.streams import open_unix_stream
from tests.support.builders import list_, profile, rule
from tests.support.events import call_lines
from tests.support.fakes import DaemonClient
from tests.support.oddbackend import OddBackend, http

VOLUMES = [{"Name": f"vol-{i:05d}", "Mountpoint": f"/data/vol-{i:05d}"} for i in range(4000)]
LIST_BODY = json.dumps({"Volumes": VOLUMES, "Err": ""}, separators=(",", ":")).encode() + b"\n"


_OPEN: list[DaemonClient] = []


@pytest.fixture
async def deadline() -> AsyncIterator[None]:
    with trio.fail_after(30):
        yield
    while _OPEN:
        await _OPEN.pop().stream.aclose()


async def proxy(nursery: trio.Nursery, tmp: str, answer: bytes | None, *rules: dict[str, Any], dribble: bool = False) -> tuple[DaemonClient, io.StringIO]:
    """A proxy in front of a backend that answers every List with `answer` (None: half of the
    long List, then it closes), and a daemon connection to it."""

    async def behave(call: PluginCall, backend: OddBackend) -> bytes | None:
        if call.operation.value == "Activate":
            return http(PluginReply.json({"Implements": ["VolumeDriver"]}))
        return answer

    backend = OddBackend(f"{tmp}/b.sock", behave)
    if answer is None:
        whole = http(PluginReply(200, LIST_BODY, "application/json"))

        async def half(call: PluginCall, odd: OddBackend) -> bytes | None:
            if call.operation.value == "Activate":
                return await behave(call, odd)
            return whole[: len(whole) // 2]

        backend = OddBackend(f"{tmp}/b.sock", half, close_after_answer=True)
    await nursery.start(backend.serve)
    log = io.StringIO()
    events = EventLog(log, close_stream=False)
    nursery.start_soon(events.run)
    client = PluginClient("odd", lambda: open_unix_stream(f"{tmp}/b.sock"), timeouts=ClientTimeouts(long=5, short=5))
    server = PluginServer(ProxyState(ServeSettings("t", f"{tmp}/p.sock", "odd"), client, ChaosEngine(profile(*rules) if rules else PASSTHROUGH), events))
    await nursery.start(server.serve)
    daemon = DaemonClient(await trio.open_unix_socket(f"{tmp}/p.sock"))
    _OPEN.append(daemon)
    return daemon, log


async def records(log: io.StringIO) -> list[dict[str, Any]]:
    await trio.testing.wait_all_tasks_blocked()  # the call's record is written once its task ends
    return call_lines(log.getvalue())


async def test_a_long_answer_reaches_the_daemon_byte_for_byte_and_is_logged_whole(short_tmp: str, nursery: trio.Nursery, deadline: None) -> None:
    assert len(LIST_BODY) > 2 * LARGE_BODY
    odd_type = "application/json; charset=\xe9"  # a header value that is not ASCII goes through too
    daemon, log = await proxy(nursery, short_tmp, http(PluginReply(200, LIST_BODY, odd_type)))
    for _ in range(2):  # and the connections on both sides serve the next call
        reply = await daemon.call(list_())
        assert reply == PluginReply(200, LIST_BODY, odd_type.encode().decode("latin-1"))  # the very bytes
    [first, second] = await records(log)
    assert (first["op"], first["outcome"], first["reply"], first["backend"]) == ("List", "answered", {"status": 200, "err": None}, {"status": 200, "err": None})
    assert second["outcome"] == "answered"


async def test_a_rule_that_rewrites_a_long_answer_still_gets_it_whole(short_tmp: str, nursery: trio.Nursery, deadline: None) -> None:
    daemon, _ = await proxy(nursery, short_tmp, http(PluginReply(200, LIST_BODY)), rule("hide", op="List", volume="vol-0000*"))
    names = [v["Name"] for v in (await daemon.call(list_())).decoded()["Volumes"]]
    assert len(names) == len(VOLUMES) - 10 and "vol-00000" not in names and "vol-00010" in names


async def test_a_backend_dying_half_way_through_a_long_answer_cuts_the_daemons_connection(short_tmp: str, nursery: trio.Nursery, deadline: None) -> None:
    daemon, log = await proxy(nursery, short_tmp, None)
    await daemon.stream.send_all(daemon.wire.request_bytes(list_(), b""))
    received = await daemon.read_raw()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: %d" % len(LIST_BODY) in head
    assert 0 < len(body) < len(LIST_BODY)  # then the connection closed: dockerd says "unexpected EOF"
    [record] = await records(log)
    assert record["outcome"] == "reset" and record["injected"] is False and record["reply"] is None
    assert "odd" in record["backend"]["error"]  # a real failure, naming the backend


async def test_short_answers_are_sent_whole_as_before(short_tmp: str, nursery: trio.Nursery, deadline: None) -> None:
    body = json.dumps({"Volumes": VOLUMES[:10], "Err": ""}).encode()
    daemon, log = await proxy(nursery, short_tmp, http(PluginReply(200, body)))
    assert (await daemon.call(list_())).body == body
    assert [r["outcome"] for r in await records(log)] == ["answered"]
