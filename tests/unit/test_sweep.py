"""The sweep's pure parts: the rule that fails only the k-th matching call, and the report."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import UsageError
from chaosvol.core.events import CallEvent
from chaosvol.tools.audit import Finding
from chaosvol.tools.sweep import SWEEP_RULE, RunResult, SweepSpec, print_report, sweep_profile
from tests.support.builders import get, profile, remove, rule


def spec(**changes: object) -> SweepSpec:
    fields: dict[str, object] = {"operation": "Remove", "action": "drop", "command": ("true",)}
    return SweepSpec(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_run_k_fails_the_kth_matching_call_and_only_it(k: int) -> None:
    engine = ChaosEngine(sweep_profile(spec(), k))
    fired = [engine.decide(remove(f"v{i}"), now=0).rule for i in range(1, 8)]
    assert fired == [SWEEP_RULE if i == k else None for i in range(1, 8)]


def test_the_baseline_counts_matching_calls_and_fires_nothing() -> None:
    engine = ChaosEngine(sweep_profile(spec(volume="db-*"), None))
    decisions = [engine.decide(call, now=0) for call in (remove("db-1"), remove("web"), get("db-1"), remove("db-2"))]
    assert all(not d.injected for d in decisions)
    assert engine.statistics().rules[SWEEP_RULE].matched == 2


def test_the_base_profile_s_rules_still_apply_after_the_sweep_rule() -> None:
    base = profile(rule("error", op="Get", name="get-fails"))
    engine = ChaosEngine(sweep_profile(spec(base=base, action="{error: {when: after}}"), 1))
    assert engine.decide(get("v"), now=0).rule == "get-fails"
    assert engine.decide(remove("v"), now=0).action == "error"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"action": "dorp"}, "--op Remove --action 'dorp': action: unknown action 'dorp' (did you mean 'drop'?)"),
        ({"action": "{delay: {}}"}, "action.delay: missing 'duration'"),
        ({"action": "hide"}, "hide"),
        ({"action": "{error: [1"}, "not YAML"),
    ],
)
def test_a_bad_op_or_action_is_refused_before_anything_runs(changes: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        sweep_profile(spec(**changes), 1)
    assert message in str(caught.value)


def test_the_report_exits_1_when_a_run_broke_or_left_an_inconsistency(tmp_path: Path) -> None:
    output = tmp_path / "run-2.log"
    output.write_text("step 1\nError: remove failed\n")
    results = [
        RunResult(0, 0, 1.0),
        RunResult(1, 0, 1.0, hit=CallEvent.from_json({"op": "Remove", "volume": "a", "seq": 3}), findings=[Finding("a", "unknown-to-daemon", "-", "-")]),
        RunResult(2, 1, 1.0, hit=CallEvent.from_json({"op": "Remove", "volume": "b", "seq": 9}), output=output),
        RunResult(3, 0, 1.0, hit=CallEvent.from_json({"op": "Remove", "volume": "c", "seq": 12})),
    ]
    out = io.StringIO()
    assert print_report(results, spec(), out) == 1
    text = out.getvalue()
    assert "1  Remove a (seq 3)      0     unknown-to-daemon a" in text
    assert "2  Remove b (seq 9)      1     consistent" in text
    assert "    | Error: remove failed" in text
    assert "2 of 3 run(s) broke the workload or left an inconsistency" in text
    assert print_report([RunResult(0, 0, 1.0), RunResult(1, 0, 1.0, hit=CallEvent.from_json({"op": "Remove", "volume": "a", "seq": 3}))], spec(), io.StringIO()) == 0


def test_a_failing_baseline_is_reported_as_the_workload_s_problem() -> None:
    out = io.StringIO()
    assert print_report([RunResult(0, 2, 1.0)], spec(), out) == 1
    assert "the baseline itself failed" in out.getvalue()
