"""Every registered fault is complete: a docstring, an example that loads, and a plan for it."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
import yaml

from chaosvol.core.profile import DEFAULT_OPERATIONS, parse_profile
from chaosvol.core.protocol import PluginCall
from chaosvol.faults import FAULTS, FaultContext

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("word", sorted(FAULTS))
def test_each_fault_has_a_docstring_and_an_example_that_loads(word: str) -> None:
    fault = FAULTS[word]
    assert fault.__doc__ and fault.word == word
    written = yaml.safe_load(fault.example)
    assert (written if isinstance(written, str) else next(iter(written))) == word
    ops = sorted(op.value for op in (fault.operations or DEFAULT_OPERATIONS))  # its example works everywhere it may go
    action = fault.example if isinstance(written, str) else "{" + fault.example + "}"
    text = f"version: 1\nrules:\n  - match: {{op: {ops}}}\n    action: {action}\n"
    loaded = parse_profile(text, "example.yaml")
    (rule,) = loaded.rules
    for operation in rule.match.operations:
        plan = rule.plan(PluginCall.build(operation, "v", mount_id="a" * 64), FaultContext(random.Random(0), 0.0, 1))
        assert plan.effects


def documented_actions(path: Path, heading: str) -> set[str]:
    """The action words of the first table after the line starting with `heading` in `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = itertools.takewhile(lambda line: line.startswith("|") or not line, lines[start + 1 :])
    return {match.group(1) for line in rows if (match := re.match(r"\| `([a-z-]+)[`:]", line))}


def test_the_contracts_actions_are_all_registered() -> None:
    contract = documented_actions(ROOT.parent / "shared" / "contract.md", "Actions (a bare word")
    assert len(contract) >= 11 and contract <= set(FAULTS)


def test_every_registered_action_is_in_the_readmes_action_table() -> None:
    assert documented_actions(ROOT / "README.md", "Actions (a bare word") == set(FAULTS)


@pytest.mark.parametrize("word", sorted(FAULTS))
def test_each_fault_says_whether_it_draws_and_its_nominal_form_draws_nothing(word: str) -> None:
    fault = FAULTS[word]
    operations = fault.operations
    op = min(o.value for o in (operations or DEFAULT_OPERATIONS))
    action = fault.example if yaml.safe_load(fault.example) == word else "{" + fault.example + "}"
    (loaded,) = parse_profile(f"version: 1\nrules:\n  - match: {{op: {op}}}\n    action: {action}\n", "x.yaml").rules[0].actions
    assert isinstance(loaded.draws(), bool)
    assert loaded.nominal().draws() is False and loaded.nominal().word == word


def test_a_jittered_delay_draws_and_its_nominal_form_is_the_nominal_duration() -> None:
    from chaosvol.faults.delay import Delay

    jittered = Delay(1.0, 0.5, "after")
    assert jittered.draws() and not Delay(1.0).draws()
    assert jittered.nominal() == Delay(1.0, 0.0, "after")
