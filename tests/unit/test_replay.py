"""replay: the profile it writes makes the same decisions, with the same parameters, on the same
calls; from a schema 2 log alone, whatever the seed."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaosvol.core.engine import ChaosEngine, Decision
from chaosvol.core.errors import ProfileError
from chaosvol.core.events import CallEvent, CallRecord, parse_event_log
from chaosvol.core.profile import load_profile, parse_profile
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.faults import FAULTS, options_of
from chaosvol.tools.replay import _glob_escape, replay
from tests.support.builders import profile

NAMES = ["v1", "v2", "we*ird", "data"]


def calls() -> list[PluginCall]:
    sequence = []
    for round_ in range(40):
        for name in ("v1", "v2", "we*ird"):
            sequence.append(PluginCall.build(Operation.GET, name))
            sequence.append(PluginCall.build(Operation.CREATE, name))
            sequence.append(PluginCall.build(Operation.MOUNT, name, mount_id=f"{round_:064d}"))
            sequence.append(PluginCall.build(Operation.UNMOUNT, name, mount_id=f"{round_:064d}"))
            sequence.append(PluginCall.build(Operation.REMOVE, name))
        sequence.append(PluginCall.build(Operation.LIST))
    return sequence


def logged(sequence: list[PluginCall], decisions: list[Decision]) -> list[CallEvent]:
    """The run as its event log says it, through the real line writer and the one reader."""
    lines = []
    for seq, (call, decision) in enumerate(zip(sequence, decisions), 1):
        record = CallRecord(
            1_795_000_000 + seq / 1000, seq, 1, call.operation.value, call.volume, call.mount_id, decision.rule, decision.action,
            True, None, PluginReply.ok(), 0.001, call.retry, "answered", call.opts, None, decision.rule_index, decision.actions,
            decision.volume_pattern,
        )
        lines.append(record.to_line())
    return list(parse_event_log(lines, "events.jsonl").events)


def resolved(decision: Decision) -> tuple[Any, ...]:
    return (decision.action, tuple((a.word, options_of(a)) for a in decision.actions), decision.plan)


def schema1(event: CallEvent) -> CallEvent:
    import dataclasses

    return dataclasses.replace(event, decision=None, decision_volume=None, rule_index=None)


def test_a_replayed_flaky_run_makes_the_same_decisions_from_the_log_alone_with_another_seed() -> None:
    original = ChaosEngine(load_profile("flaky"), seed=11)
    sequence = calls()
    first = [original.decide(call, now=0.0) for call in sequence]
    assert sum(d.injected for d in first) > 10 and any(d.action == "delay" for d in first)
    written = replay(logged(sequence, first))
    assert written.unreproducible == [] and written.notes == []
    again = ChaosEngine(parse_profile(written.text, "replay.yaml"), seed=999)  # any seed: nothing is drawn
    second = [again.decide(call, now=0.0) for call in sequence]
    assert [i for i, d in enumerate(first) if d.injected] == [i for i, d in enumerate(second) if d.injected]
    for before, after in zip(first, second):
        if before.injected:
            assert resolved(before) == resolved(after)  # a jittered delay included: the drawn duration


def test_a_schema_1_log_replays_with_the_original_profile_and_says_what_is_approximate() -> None:
    flaky = load_profile("flaky")
    sequence = calls()
    engine = ChaosEngine(flaky, seed=11)
    first = [engine.decide(call, now=0.0) for call in sequence]
    events = [schema1(event) for event in logged(sequence, first)]
    written = replay(events, flaky)
    assert written.unreproducible == []
    assert any("nominal duration" in note for note in written.notes)
    again = ChaosEngine(parse_profile(written.text, "r.yaml"), seed=1)
    second = [again.decide(call, now=0.0) for call in sequence]
    assert [(i, d.action) for i, d in enumerate(first) if d.injected] == [(i, d.action) for i, d in enumerate(second) if d.injected]


def test_what_cannot_be_reproduced_is_named() -> None:
    events = [CallEvent.from_json(value) for value in (
        {"seq": 1, "op": "Mount", "volume": "v", "rule": "slow", "action": "delay"},  # schema 1: no options, no profile
        {"seq": 2, "op": "Remove", "volume": "v", "rule": "drop-removes", "action": "drop"},
        {"seq": 3, "op": "Remove", "volume": None, "rule": "drop-removes", "action": "drop", "retry": True},
        {"seq": 4, "op": "Get", "volume": "v", "rule": "x", "action": "meteor",
         "decision": {"actions": [{"meteor": {}}], "volume": None}},
    )]
    result = replay(events)
    assert result.rules == 2  # the drops; the retry (seq 3) among the Remove retries
    why = {reason.split(":")[0]: reason for reason in result.unreproducible}
    assert set(why) == {"seq 1", "seq 4"}
    assert "pass the run's profile with --profile" in why["seq 1"]
    assert "not one this chaosvol knows" in why["seq 4"]


def test_names_with_glob_characters_are_matched_literally() -> None:
    import fnmatch

    assert fnmatch.fnmatchcase("a*b", _glob_escape("a*b")) and not fnmatch.fnmatchcase("axb", _glob_escape("a*b"))


# -- the property: any profile, any calls ----------------------------------------------------------

def _examples() -> list[Any]:
    """Every registered fault's example, as a profile writes it: a new fault is tested here too."""
    return [yaml.safe_load(FAULTS[word].example) for word in sorted(FAULTS)]


ACTIONS: st.SearchStrategy[Any] = st.sampled_from([
    *_examples(),
    "drop", "pass", "hide",
    {"delay": {"duration": "40ms", "jitter": "35ms"}},
    {"delay": {"duration": "1s", "jitter": "999ms", "when": "after"}},
    {"delay": {"duration": "250ms"}},
    {"error": {"when": "after"}}, {"error": {"message": "disk on fire", "status": 200}}, "error",
    {"reset": {"when": "after"}}, "reset",
    {"hang": {"forward": "130s"}}, "hang",
    {"hold": {"timeout": "2s", "when": "after"}},
    {"corrupt": {"body": "truncated"}}, {"corrupt": {"mountpoint": ""}}, {"corrupt": {"body": "garbage", "forward": False}},
    {"ghost": {"names": ["g1", "g2"]}},
    {"crash": {"after": "0s", "restart": "1s"}},
])
OPERATIONS = ["Create", "Remove", "Mount", "Unmount", "Path", "Get", "List", "Capabilities"]


def _loads(rule: dict[str, Any]) -> bool:
    try:
        parse_profile(yaml.safe_dump({"version": 1, "rules": [rule]}), "a.yaml")
    except ProfileError:
        return False
    return True


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(ACTIONS)
    allowed = [op for op in OPERATIONS if _loads({"match": {"op": op}, "action": action})]  # what the fault works on
    rule: dict[str, Any] = {"match": {"op": draw(st.lists(st.sampled_from(allowed), min_size=1, max_size=3, unique=True))}}
    if draw(st.booleans()):
        rule["match"]["volume"] = draw(st.sampled_from(["v*", "v1", "*a*", "we[*]ird"]))
    if draw(st.booleans()):
        rule["after"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        rule["times"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        rule["probability"] = draw(st.sampled_from([0.1, 0.5, 0.9]))
    if draw(st.integers(0, 4)) == 0:  # several actions in one rule, as `actions: [...]` writes them
        second = draw(st.sampled_from([{"delay": {"duration": "20ms", "jitter": "10ms"}}, {"error": {"when": "after"}}]))
        rule["actions"] = [action, second]
        if _loads(rule):
            return rule
        del rule["actions"]  # an order that cannot run (a reset before the second): one action
    rule["action"] = action
    return rule


@st.composite
def call_sequences(draw: st.DrawFn) -> list[PluginCall]:
    sequence = []
    for _ in range(draw(st.integers(1, 60))):
        operation = Operation(draw(st.sampled_from(OPERATIONS)))
        name = draw(st.sampled_from(NAMES))
        mount_id = draw(st.sampled_from(["a" * 64, "b" * 64])) if operation in (Operation.MOUNT, Operation.UNMOUNT) else None
        kind = draw(st.integers(0, 9)) if operation.names_volume else 0
        if kind == 8:  # dockerd's empty-body retry that the proxy could not link to a call it cut
            sequence.append(PluginCall.parse(operation, b""))
        elif kind == 9:  # one it linked: rules see the volume of the call it retries
            sequence.append(PluginCall.parse(operation, b"").as_retry_of(name, mount_id))
        else:
            sequence.append(PluginCall.build(operation, None if operation in (Operation.LIST, Operation.CAPABILITIES) else name, mount_id=mount_id))
    return sequence


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=st.lists(rules(), min_size=1, max_size=6), seed=st.integers(0, 2**32), other=st.integers(0, 2**32), calls=call_sequences())
def test_any_run_replays_from_its_log_alone_to_the_same_decisions_and_parameters(
    rules: list[dict[str, Any]], seed: int, other: int, calls: list[PluginCall]
) -> None:
    original = ChaosEngine(profile(*rules), seed=seed)
    first = [original.decide(call, now=float(i)) for i, call in enumerate(calls)]
    written = replay(logged(calls, first))
    assert written.unreproducible == [] and written.notes == []
    again = ChaosEngine(parse_profile(written.text, "replay.yaml"), seed=other)
    second = [again.decide(call, now=float(i)) for i, call in enumerate(calls)]
    fired_first = [(i, resolved(d)) for i, d in enumerate(first) if d.injected and d.action != "pass"]
    fired_second = [(i, resolved(d)) for i, d in enumerate(second) if d.injected]
    assert fired_first == fired_second
