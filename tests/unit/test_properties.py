"""Properties of the core, checked by hypothesis."""

from __future__ import annotations

from pathlib import Path

import h11
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import RequestError
from chaosvol.core.profile import load_profile
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ClientWire, ServerWire
from tests.support.builders import profile, rule

FLAKY = load_profile("flaky")
FLAKY_RULES = yaml.safe_load(Path(FLAKY.source).read_text())["rules"]
NAMES = st.sampled_from(["v1", "v2", "chaos-a", "data"])


@st.composite
def plugin_calls(draw: st.DrawFn) -> PluginCall:
    operation = draw(st.sampled_from(list(Operation)))
    if draw(st.integers(0, 20)) == 0:
        return PluginCall.parse(operation, b"")
    name = draw(NAMES)
    mount_id = draw(st.sampled_from(["a" * 64, "b" * 64])) if operation in (Operation.MOUNT, Operation.UNMOUNT) else None
    return PluginCall.build(operation, name, mount_id=mount_id)


@given(seed=st.integers(min_value=0, max_value=2**64), calls=st.lists(plugin_calls(), max_size=40))
def test_same_seed_and_calls_give_the_same_decisions(seed: int, calls: list[PluginCall]) -> None:
    first, second = ChaosEngine(FLAKY, seed=seed), ChaosEngine(FLAKY, seed=seed)
    assert [first.decide(c, now=0.0) for c in calls] == [second.decide(c, now=0.0) for c in calls]


@given(seed=st.integers(min_value=0, max_value=1000), calls=st.lists(plugin_calls(), max_size=40))
def test_a_rule_that_matches_nothing_changes_no_decision(seed: int, calls: list[PluginCall]) -> None:
    base = profile(*FLAKY_RULES)
    extra = profile(rule("drop", op="Remove", volume="never-*", name="inert"), *FLAKY_RULES)
    first, second = ChaosEngine(base, seed=seed), ChaosEngine(extra, seed=seed)
    assert [first.decide(c, now=0.0).plan for c in calls] == [second.decide(c, now=0.0).plan for c in calls]


@settings(max_examples=300)
@given(
    seed=st.integers(min_value=0, max_value=1000),
    calls=st.lists(st.tuples(plugin_calls(), st.booleans()), max_size=40),
)
def test_nothing_fires_while_paused_and_every_rule_counts_each_paused_call_it_matches(
    seed: int, calls: list[tuple[PluginCall, bool]]
) -> None:
    engine = ChaosEngine(FLAKY, seed=seed)
    counted = {rule.name: 0 for rule in FLAKY.rules}
    for call, pause in calls:
        before = {name: r.matched for name, r in engine.statistics().rules.items()}
        decision = engine.decide(call, now=0.0, paused=pause)
        after = engine.statistics().rules
        if pause:
            assert not decision.injected
            for rule in FLAKY.rules:
                expected = 1 if rule.match.matches(call, rule.sees_list_entries) and call.operation in rule.match.operations else 0
                assert after[rule.name].matched - before[rule.name] == expected
                counted[rule.name] += expected
    assert all(engine.statistics().rules[name].matched >= n for name, n in counted.items())


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_bytes_into_the_server_wire_give_calls_or_a_request_error(chunks: list[bytes]) -> None:
    wire = ServerWire()
    try:
        for chunk in chunks + [b""]:
            wire.receive_data(chunk)
            while True:
                event = wire.next_call()
                if isinstance(event, WireState):
                    break
                if isinstance(event, PluginCall):
                    wire.reply_bytes(PluginReply.ok())
                else:
                    wire.reply_bytes(event.error.docker_reply())
            if event is WireState.CLOSED:
                break
    except RequestError as exc:
        assert 400 <= exc.status_hint < 500


def _run_wire(wire: ServerWire, chunks: list[bytes]) -> list[object]:
    """Everything a wire makes of `chunks`: calls (with headers), refusals, answers, errors."""
    seen: list[object] = []
    try:
        for chunk in chunks + [b""]:
            wire.receive_data(chunk)
            while True:
                event = wire.next_call()
                if isinstance(event, WireState):
                    seen.append(event)
                    break
                if isinstance(event, PluginCall):
                    seen.append((event, event.headers))
                    seen.append(wire.reply_bytes(PluginReply.json({"Err": ""})))
                else:
                    seen.append((event.error.status_hint, str(event.error)))
                    seen.append(wire.reply_bytes(event.error.docker_reply()))
            if seen[-1] is WireState.CLOSED:
                break
    except RequestError as exc:
        seen.append(("error", exc.status_hint, wire.error_bytes(exc).split(b"\r\n")[0]))
    return seen


def _dockerd_like() -> st.SearchStrategy[bytes]:
    from tests.support.builders import DOCKERD_REQUESTS

    samples = st.sampled_from([s.raw for s in DOCKERD_REQUESTS])
    odd = st.sampled_from([
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /VolumeDriver.Get HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\n Folded: y\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /VolumeDriver.Nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{}",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: x\r\nBad Header: y\r\nContent-Length: 2\r\n\r\n{}",
    ])
    return st.one_of(samples, odd, st.binary(max_size=40))


@settings(max_examples=400)
@given(st.lists(_dockerd_like(), min_size=1, max_size=5), st.integers(min_value=1, max_value=50), st.booleans())
def test_the_fast_path_and_h11_make_the_same_of_any_input(requests: list[bytes], chunk: int, truncate: bool) -> None:
    data = b"".join(requests)
    if truncate:
        data = data[: len(data) * 2 // 3]
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert _run_wire(ServerWire(fast=True), chunks) == _run_wire(ServerWire(fast=False), chunks)


def _read_answer(wire: ClientWire, chunks: list[bytes]) -> object:
    wire.request_bytes(PluginCall.build(Operation.GET, "v"), b"")
    try:
        for chunk in chunks + [b""]:
            wire.receive_data(chunk)
            reply = wire.next_reply()
            if isinstance(reply, PluginReply):
                return (reply, wire.reusable or chunk == b"")
        return "need data"
    except h11.RemoteProtocolError:
        return "protocol error"


ANSWERS = st.one_of(
    st.sampled_from([
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"Err\":\"\"}\n",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 9\r\n\r\n{\"Err\":1}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}\n\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n{}",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"Volumes\":[]}\nHTTP/1.1 200 OK\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ]),
    st.binary(max_size=30),
)


@settings(max_examples=400)
@given(ANSWERS, st.integers(min_value=1, max_value=40))
def test_the_client_fast_path_and_h11_read_the_same_answers(answer: bytes, chunk: int) -> None:
    chunks = [answer[i : i + chunk] for i in range(0, len(answer), chunk)]
    assert _read_answer(ClientWire(fast=True), chunks) == _read_answer(ClientWire(fast=False), chunks)


GLOBS = st.sampled_from(["v1", "v*", "chaos-?", "[cd]*", "*a*", "data", "x[!y]z", "never-*"])
VOLUME_NAMES = st.sampled_from(["v1", "v2", "chaos-a", "data", "dat", "xaz", "xyz", "never-1", "", "-v", "v1\n"])


@settings(max_examples=200)
@given(
    seed=st.integers(min_value=0, max_value=1000),
    rules=st.lists(st.tuples(GLOBS, st.sampled_from(["Get", "Remove", "Mount"]), st.integers(0, 2), st.sampled_from([1.0, 0.5])), min_size=1, max_size=6),
    calls=st.lists(st.tuples(st.sampled_from([Operation.GET, Operation.REMOVE, Operation.MOUNT, Operation.LIST]), VOLUME_NAMES), max_size=30),
)
def test_the_one_regex_shortcut_for_volume_rules_decides_and_counts_as_the_rules_one_by_one(
    seed: int, rules: list[tuple[str, str, int, float]], calls: list[tuple[Operation, str]]
) -> None:
    written = [rule("error", op=op, volume=glob, after=after, probability=p, name=f"r{i}") for i, (glob, op, after, p) in enumerate(rules)]
    shortcut, one_by_one = ChaosEngine(profile(*written), seed=seed), ChaosEngine(profile(*written), seed=seed)
    one_by_one._any_volume.clear()
    for operation, volume in calls:
        call = PluginCall.build(operation, volume)
        assert shortcut.decide(call, now=0.0) == one_by_one.decide(call, now=0.0)
    assert shortcut.statistics() == one_by_one.statistics()
