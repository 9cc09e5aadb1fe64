"""The shell on memory streams, with trio's fake clock: delays are asserted exactly."""

from __future__ import annotations

import contextlib
import io
import random
from typing import Any

import h11
import pytest
import trio
import trio.testing
import yaml

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import BackendUnavailable
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.faults import FAULTS
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from tests.support.builders import (
    DOCKERD_REQUESTS,
    activate,
    create,
    empty_retry,
    get,
    list_,
    mount,
    profile,
    remove,
    rule,
)
from tests.support.fakes import DaemonClient, FailingBackend, RecordingBackend
from tests.support.shell import start_proxy


async def test_delay_before_forward_lasts_exactly_forty_seconds(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"delay": {"duration": "40s"}}, op="Remove"))
    reply = await proxy.connect().call(remove("v1"))
    assert (trio.current_time(), reply.status, proxy.backend.calls) == (40.0, 200, [remove("v1")])


async def test_a_delayed_call_never_blocks_calls_on_other_connections(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"delay": {"duration": "40s"}}, op="Mount"))
    finished: dict[str, float] = {}

    async def slow() -> None:
        await proxy.connect().call(mount("v1"))
        finished["mount"] = trio.current_time()

    nursery.start_soon(slow)
    await trio.testing.wait_all_tasks_blocked()
    await proxy.connect().call(get("v1"))
    finished["get"] = trio.current_time()
    await trio.sleep(41)
    assert finished == {"get": 0.0, "mount": 40.0}


async def test_activate_is_answered_by_the_proxy_itself(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    reply = await proxy.connect().call(activate())
    assert (reply.status, reply.decoded(), proxy.backend.calls) == (200, {"Implements": ["VolumeDriver"]}, [])


async def test_pass_through_is_byte_for_byte_both_ways(nursery: trio.Nursery) -> None:
    odd = PluginReply(201, b'{"Err":"weird"}  trailing', "text/plain")
    proxy = await start_proxy(nursery, backend=RecordingBackend(lambda call: odd))
    client = proxy.connect()
    for sample in DOCKERD_REQUESTS[1:]:
        await client.send_raw(sample.raw)
        reply = await client.read_reply()
        assert (reply.status, reply.body, reply.content_type) == (201, odd.body, "text/plain")
    assert [c.body for c in proxy.backend.calls] == [s.call.body for s in DOCKERD_REQUESTS[1:]]


async def test_a_dropped_remove_is_logged_as_injected_and_not_forwarded(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="drop-removes"))
    reply = await proxy.connect().call(remove("v1"))
    assert reply == PluginReply.ok() and proxy.backend.calls == []
    (record,) = await proxy.records()
    keys = ("seq", "conn", "op", "volume", "rule", "action", "rule_index", "decision", "forwarded", "backend", "reply", "injected", "outcome")
    assert {k: record[k] for k in keys} == {
        "seq": 1, "conn": 1, "op": "Remove", "volume": "v1", "rule": "drop-removes", "action": "drop", "rule_index": 0,
        "decision": {"actions": [{"drop": {}}], "volume": None}, "forwarded": False, "backend": None,
        "reply": {"status": 200, "err": None, "bytes": len(PluginReply.ok().body)}, "injected": True, "outcome": "answered",
    }


async def test_an_empty_body_retry_is_forwarded_as_it_came_and_marked(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    client = proxy.connect()
    await client.send_raw(next(s for s in DOCKERD_REQUESTS if s.label == "empty-body-retry").raw)
    await client.read_reply()
    assert proxy.backend.calls[0].body == b"" and proxy.backend.calls[0].retry
    (record,) = await proxy.records()
    assert record["retry"] is True and record["op"] == "Remove"


async def test_hang_never_answers_and_ends_when_the_daemon_hangs_up(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"hang": {"forward": "130s"}}, op="Create"))
    client = proxy.connect()
    await client.send_raw(client.wire.request_bytes(create("late"), b""))
    with trio.move_on_after(120):  # dockerd's Create timeout
        await client.read_reply()
        raise AssertionError("a hung call was answered")
    await client.stream.aclose()
    assert proxy.backend.calls == []
    await trio.sleep(15)
    assert proxy.backend.calls == [create("late")]  # the backend creates it late, as planned
    (record,) = await proxy.records()
    assert (record["outcome"], record["reply"], record["forwarded"], record["ms"]) == ("hung", None, True, 130000.0)


async def test_reset_closes_without_an_answer_after_the_backend_acted(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"reset": {"when": "after"}}, op="Remove"))
    client = proxy.connect()
    await client.send_raw(client.wire.request_bytes(remove("v1"), b""))
    assert await client.closed_without_answer()
    assert proxy.backend.calls == [remove("v1")]


async def test_backend_failures_are_honest_errors_naming_the_backend(nursery: trio.Nursery) -> None:
    backend = FailingBackend(BackendUnavailable("realvol", "cannot connect: Connection refused"))
    proxy = await start_proxy(nursery, backend=backend)
    reply = await proxy.connect().call(remove("v1"))
    assert reply.status == 502
    assert reply.err == "chaosvol: backend realvol unavailable: cannot connect: Connection refused"
    assert "injected" not in (reply.err or "")
    (record,) = await proxy.records()
    assert record["injected"] is False and record["backend"] == {"error": "backend realvol unavailable: cannot connect: Connection refused"}


async def test_an_unknown_endpoint_gets_404_and_the_connection_serves_on(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    client = proxy.connect()
    await client.send_raw(b"POST /VolumeDriver.Snapshot HTTP/1.1\r\nHost: \r\nContent-Length: 3\r\n\r\n{}\n")
    refused = await client.read_reply()
    assert refused.status == 404 and "unknown endpoint" in (refused.err or "")
    assert (await client.call(list_())).status == 200


async def test_a_malformed_request_gets_400_and_only_its_connection_closes(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    bad, good = proxy.connect(), proxy.connect()
    await bad.send_raw(b"POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
    raw = await bad.read_raw()
    assert raw.startswith(b"HTTP/1.1 400 ") and b'"Err":"chaosvol: bad request' in raw
    assert (await good.call(get("v"))).status == 200


async def test_half_a_request_is_dropped_after_the_read_timeout_but_delays_are_not(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"delay": {"duration": "100s"}}, op="Mount"))
    stalled, delayed = proxy.connect(), proxy.connect()
    await stalled.send_raw(b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\n")
    result: dict[str, float] = {}

    async def mount_call() -> None:
        reply = await delayed.call(mount("v"))
        result["mount"] = trio.current_time() if reply.status == 200 else -1

    nursery.start_soon(mount_call)
    assert await stalled.closed_without_answer()
    assert trio.current_time() == 30.0
    await trio.sleep(80)
    assert result == {"mount": 100.0}


async def test_a_daemon_that_hangs_up_before_the_answer_is_logged_not_fatal(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"delay": {"duration": "70s"}}, op="Remove"))
    client = proxy.connect()
    await client.send_raw(client.wire.request_bytes(remove("v1"), b""))
    await trio.sleep(60)
    await client.stream.aclose()
    await trio.sleep(20)
    (record,) = await proxy.records()
    assert record["outcome"] == "client-gone" and proxy.backend.calls == [remove("v1")]
    assert (await proxy.connect().call(get("v"))).status == 200


def _example_rule(word: str) -> dict[str, Any]:
    fault = FAULTS[word]
    written = yaml.safe_load(fault.example)
    operations = sorted(op.value for op in (fault.operations or {Operation.MOUNT}))
    return rule(written, op=["Mount"] if word == "corrupt" else operations)


@pytest.mark.parametrize("word", sorted(FAULTS))
async def test_every_registered_example_runs_through_the_shell(word: str, autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, _example_rule(word))
    fault = FAULTS[word]
    operation = min(fault.operations or {Operation.MOUNT}, key=lambda op: op.value)
    call = PluginCall.build(operation, "v", mount_id="a" * 64 if operation in (Operation.MOUNT, Operation.UNMOUNT) else None)
    client = proxy.connect()
    await client.send_raw(client.wire.request_bytes(call, b""))
    with trio.move_on_after(200):
        with contextlib.suppress(trio.BrokenResourceError, h11.RemoteProtocolError):  # reset and hang end unanswered:
            await client.read_reply()  # what matters is the record below
    await client.stream.aclose()
    await trio.sleep(200)
    (record,) = await proxy.records()
    assert record["rule"] == "rule-0" and record["action"] == word and record["injected"]


async def test_the_event_log_survives_a_write_error(nursery: trio.Nursery) -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    events = EventLog(Full(), close_stream=False)
    nursery.start_soon(events.run)
    server = PluginServer(ProxyState(ServeSettings("t", "/x", "r"), RecordingBackend(), ChaosEngine(profile()), events))
    client, server_stream = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_connection, server_stream, 1)
    daemon = DaemonClient(client)
    for _ in range(3):
        assert (await daemon.call(get("v"))).status == 200
    await trio.testing.wait_all_tasks_blocked()
    assert events.lost == 3 and events.written == 0


def test_random_is_never_used_globally() -> None:
    state = random.getstate()
    engine = ChaosEngine(profile(rule("drop", op="Remove", probability=0.5)))
    for _ in range(10):
        engine.decide(remove("v"), now=0.0)
    assert random.getstate() == state


async def test_pipelined_requests_are_answered_in_order(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"delay": {"duration": "10ms"}}, op="Get"))
    client = proxy.connect()
    by_label = {s.label: s.raw for s in DOCKERD_REQUESTS}
    raw = by_label["get"] + by_label["list"] + by_label["remove"]
    await client.send_raw(raw)
    data = b""
    with trio.fail_after(5):
        while data.count(b"HTTP/1.1 200 OK") < 3:
            data += await client.stream.receive_some(65536)
    assert [c.operation.value for c in proxy.backend.calls] == ["Get", "List", "Remove"]
    first, second, third = data.split(b"HTTP/1.1 200 OK")[1:]
    assert b'"Volume"' in first and b'"Volumes"' in second and b'{"Err":""}' in third


async def test_oversize_headers_get_431_and_the_server_serves_on(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    bad = proxy.connect()
    await bad.send_raw(b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\nX-Big: " + b"a" * 20_000)  # and never ends
    assert (await bad.read_raw()).startswith(b"HTTP/1.1 431 ")
    assert (await proxy.connect().call(get("v"))).status == 200


async def test_dockerds_retry_of_a_cut_create_carries_its_volume_and_a_retry_rule_selects_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    # Case C of the audit: the Create of c1 is cut after the backend made it; dockerd's empty-body
    # retry 1 s later is answered success without reaching the backend.
    proxy = await start_proxy(
        nursery,
        rule({"reset": {"when": "after"}}, op="Create", volume="c*", times=1, name="cut-create", retry=False),
        rule("drop", op="Create", volume="c*", name="answer-the-retry", retry=True),
    )
    first = proxy.connect()
    await first.send_raw(first.wire.request_bytes(create("c1"), b""))
    assert await first.closed_without_answer()
    await trio.sleep(1.0)
    retry = proxy.connect()
    await retry.send_raw(retry.wire.request_bytes(empty_retry(Operation.CREATE), b""))
    assert (await retry.read_reply()).err is None
    cut, retried = await proxy.records()
    assert (cut["seq"], cut["volume"], cut["outcome"], cut["rule"]) == (1, "c1", "reset", "cut-create")
    assert (retried["retry"], retried["retry_of"], retried["volume"], retried["rule"]) == (True, 1, "c1", "answer-the-retry")
    assert [c.body for c in proxy.backend.calls] == [create("c1").body]  # the retry never reached the backend


async def test_a_retry_that_cannot_be_linked_says_why_and_matches_no_volume_rule(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", volume="v*", name="volume-rule"))
    client = proxy.connect()
    await client.send_raw(next(s for s in DOCKERD_REQUESTS if s.label == "empty-body-retry").raw)
    await client.read_reply()
    (record,) = await proxy.records()
    assert (record["retry"], record["retry_of"], record["volume"], record["rule"]) == (True, None, None, None)
    assert record["retry_link"] == "no Remove was cut in the last 20s: not a retry of a call chaosvol cut"
