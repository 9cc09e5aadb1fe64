"""The control API and held calls, on memory streams with trio's fake clock.

Each control command, and each way a control request can be wrong, answered as the API says;
holds that end by release, by timeout and by cancellation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from chaosvol.core.protocol import PluginReply
from chaosvol.proxy.control import ControlRequest, ControlServer, ControlWire
from chaosvol.wire.common import WireState
from chaosvol.wire.http import Refused
from tests.support.builders import activate, create, get, list_, profile_text, remove, rule
from tests.support.fakes import DaemonClient
from tests.support.shell import Proxy, start_proxy


async def control_call(proxy: Proxy, target: str, body: Any = None, method: str = "POST") -> tuple[int, dict[str, Any]]:
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await ControlServer(proxy.server.state, "/unused").dispatch(ControlRequest(method, target, raw))
    assert reply.content_type == "application/json"
    return reply.status, json.loads(reply.body)


async def test_status_counts_calls_per_operation_and_names_the_profile(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="d"))
    client = proxy.connect()
    for call in (create("v"), get("v"), get("v"), remove("v")):
        await client.call(call)
    status, answer = await control_call(proxy, "/status", method="GET")
    assert status == 200
    assert answer["calls"] == {"Create": 1, "Get": 2, "Remove": 1}
    assert (answer["calls_total"], answer["in_flight"], answer["held"], answer["paused"]) == (4, 0, 0, False)
    assert answer["profile"]["rules"] == 1 and answer["backend"] == proxy.backend.name


async def test_rules_show_matched_and_fired(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="d", after=1), rule("error", op="Get", name="g"))
    client = proxy.connect()
    await client.call(remove("a"))
    await client.call(remove("b"))
    _, answer = await control_call(proxy, "/rules")
    assert [(r["name"], r["action"], r["enabled"], r["matched"], r["fired"]) for r in answer["rules"]] == [
        ("d", "drop", True, 2, 1),
        ("g", "error", True, 0, 0),
    ]


async def test_load_puts_a_profile_in_force_and_a_bad_one_is_refused_with_its_line(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    client = proxy.connect()
    status, answer = await control_call(proxy, "/load", {"text": "version: 1\nrules:\n  - action: dorp\n", "source": "bad.yaml"})
    assert status == 400
    assert "bad.yaml:3:13: rules[0].action: unknown action 'dorp' (did you mean 'drop'?)" in answer["Err"]
    assert len(answer["problems"]) == 1
    assert (await client.call(remove("v"))).status == 200 and proxy.backend.calls == [remove("v")]  # still pass-through

    status, answer = await control_call(proxy, "/load", {"text": profile_text(rule("drop", op="Remove", name="d")), "source": "good.yaml"})
    assert (status, answer["rules"]) == (200, 1)
    await client.call(remove("w"))
    assert proxy.backend.calls == [remove("v")]  # the new rule dropped the second remove


async def test_pause_lets_everything_through_and_resume_brings_the_rules_back(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="d"))
    client = proxy.connect()
    assert await control_call(proxy, "/pause") == (200, {"paused": True})
    await client.call(remove("a"))
    assert await control_call(proxy, "/resume") == (200, {"paused": False})
    await client.call(remove("b"))
    assert proxy.backend.calls == [remove("a")]
    records = await proxy.records()
    assert [(r["volume"], r["rule"]) for r in records] == [("a", None), ("b", "d")]
    _, rules = await control_call(proxy, "/rules")
    assert (rules["rules"][0]["matched"], rules["rules"][0]["fired"]) == (2, 1)  # counted while paused


async def test_disable_and_enable_a_rule_by_name(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="d"))
    client = proxy.connect()
    assert await control_call(proxy, "/disable", {"rule": "d"}) == (200, {"rule": "d", "enabled": False})
    await client.call(remove("a"))
    assert await control_call(proxy, "/enable", {"rule": "d"}) == (200, {"rule": "d", "enabled": True})
    await client.call(remove("b"))
    assert proxy.backend.calls == [remove("a")]


@pytest.mark.parametrize(
    ("target", "body", "status", "message"),
    [
        ("/disable", {"rule": "nope"}, 404, "no rule named 'nope'; the rules are: d"),
        ("/disable", {}, 400, "'rule' is required"),
        ("/enable", {"rule": 3}, 400, "'rule' must be a string, not 3"),
        ("/release", {"id": 9}, 404, "no held call has id 9; held now: none"),
        ("/release", {"match": {"op": "List"}}, 404, "no held call matches op=List; held now: none"),
        ("/release", {"match": {"op": "Lst"}}, 400, 'match op "Lst" is no operation'),
        ("/release", {"match": {"size": 1}}, 400, "a match is"),
        ("/release", {}, 400, "say which calls to release"),
        ("/release", b"{not json", 400, "the request body is not JSON"),
        ("/release", b"[1, 2]", 400, "the request body must be a JSON object, not list"),
        ("/events", {"wait": -1}, 400, "'wait' is a number of seconds >= 0"),
        ("/load", {"source": "x.yaml"}, 400, "'text' is required"),
    ],
)
async def test_a_wrong_request_gets_a_clear_error(nursery: trio.Nursery, target: str, body: Any, status: int, message: str) -> None:
    proxy = await start_proxy(nursery, rule("drop", op="Remove", name="d"))
    got_status, answer = await control_call(proxy, target, body)
    assert got_status == status
    assert message in answer["Err"]


async def test_release_all_of_nothing_is_not_an_error(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    assert await control_call(proxy, "/release", {"all": True}) == (200, {"released": []})


def test_the_control_wire_refuses_unknown_endpoints_and_wrong_methods() -> None:
    wire = ControlWire()
    wire.receive_data(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    refused = wire.next_call()
    assert isinstance(refused, Refused) and refused.error.status_hint == 404
    wire.reply_bytes(PluginReply(404, b"{}"))
    wire.receive_data(b"GET /load HTTP/1.1\r\nHost: x\r\n\r\n")
    refused = wire.next_call()
    assert isinstance(refused, Refused) and refused.error.status_hint == 405
    wire.reply_bytes(PluginReply(405, b"{}"))
    wire.receive_data(b"GET /status?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wire.next_call() == ControlRequest("GET", "/status", b"")
    assert wire.next_call() is WireState.NEED_DATA


# -- held calls -------------------------------------------------------------------------------


async def test_a_held_call_waits_for_release_and_others_go_on(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("hold", op="Remove", name="h"))
    answered: list[tuple[str, float, int]] = []

    async def removing() -> None:
        reply = await proxy.connect().call(remove("v"))
        answered.append(("remove", trio.current_time(), reply.status))

    nursery.start_soon(removing)
    await trio.sleep(100)
    assert (await proxy.connect().call(get("v"))).status == 200  # another connection is not held up
    _, held = await control_call(proxy, "/held", method="GET")
    assert [(h["id"], h["op"], h["volume"], h["rule"], h["held_s"]) for h in held["held"]] == [(1, "Remove", "v", "h", 100.0)]
    assert proxy.backend.calls == [get("v")]  # held before the backend saw it
    _, released = await control_call(proxy, "/release", {"id": 1})
    assert [r["id"] for r in released["released"]] == [1]
    await trio.testing.wait_all_tasks_blocked()
    assert answered == [("remove", 100.0, 200)]
    assert proxy.backend.calls == [get("v"), remove("v")]
    records = await proxy.records()
    assert [(r["op"], r["held"], r["ms"]) for r in records] == [("Get", None, 0.0), ("Remove", "released", 100000.0)]


async def test_hold_after_lets_the_backend_act_and_holds_the_answer(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"hold": {"when": "after"}}, op="List", name="h"))
    nursery.start_soon(proxy.connect().call, list_())
    _, held = await control_call(proxy, "/held", {"match": {"op": "List"}, "wait": 5})
    assert len(held["held"]) == 1 and proxy.backend.calls == [list_()]


async def test_a_hold_with_a_timeout_goes_on_by_itself(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule({"hold": {"timeout": "30s"}}, op="Remove", name="h"))
    reply = await proxy.connect().call(remove("v"))
    assert (trio.current_time(), reply.status, proxy.backend.calls) == (30.0, 200, [remove("v")])
    assert [r["held"] for r in await proxy.records()] == ["timeout"]


async def test_release_by_match_picks_by_operation_and_volume_glob(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("hold", op=["Remove", "Get"], name="h"))
    for call in (remove("db-1"), remove("web-1"), get("db-2")):
        nursery.start_soon(proxy.connect().call, call)
    _, held = await control_call(proxy, "/held", {"wait": 5, "count": 3})
    assert len(held["held"]) == 3
    _, released = await control_call(proxy, "/release", {"match": {"op": "remove", "volume": "db-*"}})
    assert [r["volume"] for r in released["released"]] == ["db-1"]
    _, held = await control_call(proxy, "/held")
    assert sorted(h["volume"] for h in held["held"]) == ["db-2", "web-1"]
    _, released = await control_call(proxy, "/release", {"all": True})
    assert len(released["released"]) == 2
    await trio.testing.wait_all_tasks_blocked()
    assert len(proxy.server.state.holds) == 0 and len(proxy.backend.calls) == 3


async def test_waiting_for_held_calls_gives_up_after_its_wait(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery, rule("hold", op="Remove", name="h"))
    assert await control_call(proxy, "/held", {"match": {"op": "List"}, "wait": 7}) == (200, {"held": []})
    assert trio.current_time() == 7.0


async def test_a_held_call_whose_connection_is_cancelled_leaves_no_hold(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as outer:
        proxy = await start_proxy(outer, rule("hold", op="Remove", name="h"))
        async with trio.open_nursery() as calls:
            client, server_end = trio.testing.memory_stream_pair()
            calls.start_soon(proxy.server.handle_connection, server_end, 1)
            calls.start_soon(DaemonClient(client).call, remove("v"))
            await trio.sleep(5)
            assert len(proxy.server.state.holds) == 1
            calls.cancel_scope.cancel()
        assert len(proxy.server.state.holds) == 0
        assert proxy.backend.calls == []
        outer.cancel_scope.cancel()


async def test_events_are_kept_and_a_follower_waits_for_new_ones(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    client = proxy.connect()
    await client.call(create("v"))
    _, answer = await control_call(proxy, "/events")
    assert [e["op"] for e in answer["events"]] == ["Create"] and answer["last"] == 1

    async def later() -> None:
        await trio.sleep(3)
        await client.call(remove("v"))

    nursery.start_soon(later)
    _, answer = await control_call(proxy, "/events", {"after": 1, "wait": 10})
    assert ([e["op"] for e in answer["events"]], answer["last"], trio.current_time()) == (["Remove"], 2, 3.0)
    _, answer = await control_call(proxy, "/events", {"after": 2, "wait": 4})
    assert (answer, trio.current_time()) == ({"events": [], "last": 2}, 7.0)


async def test_dockerd_activating_the_control_socket_is_told_it_implements_nothing(nursery: trio.Nursery) -> None:
    proxy = await start_proxy(nursery)
    assert await control_call(proxy, "/Plugin.Activate") == (200, {"Implements": []})


def test_the_kept_records_are_bounded_by_count_and_by_the_reply_bytes_they_keep_alive() -> None:
    from chaosvol.core.events import CallRecord
    from chaosvol.proxy.eventlog import RecentEvents

    def record(seq: int, size: int) -> CallRecord:
        return CallRecord(0.0, seq, 1, "List", None, None, None, None, True, None, PluginReply(200, b"x" * size), 0.0)

    recent = RecentEvents(size=3, max_bytes=1000)
    for seq in range(1, 6):
        recent.add(record(seq, 10))
    assert [r.seq for r in recent.after(0)] == [3, 4, 5]
    recent.add(record(6, 900))
    recent.add(record(7, 900))  # 1,800 bytes: the older big one goes
    assert [r.seq for r in recent.after(0)] == [7]


def test_an_answer_s_err_is_worked_out_only_when_its_line_is_written() -> None:
    from chaosvol.core.events import BackendOutcome, CallRecord

    reply = PluginReply(200, b'{"Volumes": [], "Err": ""}\n')
    record = CallRecord(0.0, 1, 1, "List", None, None, None, None, True, BackendOutcome(reply), reply, 0.0)
    assert reply._cache == {}
    assert record.to_json()["reply"] == {"status": 200, "err": None} and record.retained_bytes == len(reply.body)


async def test_a_profile_loaded_between_a_daemons_stop_and_start_aims_at_its_next_activation(nursery: trio.Nursery) -> None:
    """The explicit way to aim at a restart: `ctl load` with `from_activation: 2` while the daemon
    is down; the proxy's count of Activates carries over, so the rule waits for the next one."""
    proxy = await start_proxy(nursery)
    client = proxy.connect()
    await client.call(activate())  # the daemon's first life
    text = profile_text(rule("error", op="Get", from_activation=2, name="restore"))
    assert (await control_call(proxy, "/load", {"text": text, "source": "restore.yaml"}))[0] == 200
    assert (await client.call(get("v"))).status == 200  # still its first life
    await client.call(activate())  # restarted
    assert (await client.call(get("v"))).status == 500
