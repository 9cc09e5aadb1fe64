"""replay: the profile it writes makes the same decisions on the same calls."""

from __future__ import annotations

from chaosvol.engine import ChaosEngine
from chaosvol.profile import load_profile, parse_profile
from chaosvol.protocol import Operation, PluginCall
from chaosvol.replay import _glob_escape, replay


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


def record(seq: int, call: PluginCall, decision: object) -> dict[str, object]:
    return {"t": f"2026-11-23T10:00:00.{seq:06d}Z", "seq": seq, "op": call.operation.value, "volume": call.volume,
            "rule": decision.rule, "action": decision.action}  # type: ignore[attr-defined]


def test_a_replayed_flaky_run_makes_the_same_decisions_on_the_same_calls() -> None:
    flaky = load_profile("flaky")
    original = ChaosEngine(flaky, seed=11)
    sequence = calls()
    first = [original.decide(call, now=0.0) for call in sequence]
    assert sum(d.injected for d in first) > 10
    written = replay([record(i, c, d) for i, (c, d) in enumerate(zip(sequence, first), 1)], flaky)
    assert not written.skipped
    again = ChaosEngine(parse_profile(written.text, "replay.yaml"), seed=999)  # any seed: nothing is drawn
    second = [again.decide(call, now=0.0) for call in sequence]
    assert [(i, d.action) for i, d in enumerate(first) if d.injected] == [(i, d.action) for i, d in enumerate(second) if d.injected]
    for before, after in zip(first, second):
        if before.injected and before.action != "delay":  # delays: the nominal duration, jitter dropped
            assert before.plan == after.plan


def test_without_the_original_profile_actions_that_need_options_are_reported() -> None:
    call = PluginCall.build(Operation.MOUNT, "v", mount_id="0" * 64)
    result = replay([{"seq": 1, "op": "Mount", "volume": "v", "rule": "slow", "action": "delay"},
                     {"seq": 2, "op": "Remove", "volume": "v", "rule": "drop-removes", "action": "drop"},
                     {"seq": 3, "op": "Remove", "volume": None, "rule": "drop-removes", "action": "drop"}])
    assert result.rules == 1 and len(result.skipped) == 2
    assert any("pass --profile" in reason for reason in result.skipped)
    assert any("empty-body retry" in reason for reason in result.skipped)
    assert call.volume == "v"


def test_names_with_glob_characters_are_matched_literally() -> None:
    import fnmatch

    assert fnmatch.fnmatchcase("a*b", _glob_escape("a*b")) and not fnmatch.fnmatchcase("axb", _glob_escape("a*b"))
