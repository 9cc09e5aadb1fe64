"""Properties of the core, checked by hypothesis."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosvol.engine import ChaosEngine
from chaosvol.errors import RequestError
from chaosvol.profile import load_profile
from chaosvol.protocol import Operation, PluginCall, PluginReply
from chaosvol.wire import ServerWire, WireState
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
