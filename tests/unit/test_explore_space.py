"""The pure part of `chaosvol explore`: the experiments, the pair search, the shrinker."""

from __future__ import annotations

import random

import trio

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.profile import parse_profile
from chaosvol.tools.explore.space import Experiment, Fault, depth1, experiment, from_key, key, pairs, rules, shrink
from tests.support.builders import remove

ACTIONS = {"Remove": ["drop", "{error: {when: before}}", "{error: {when: after}}"], "Get": ["{error: {when: before}}"]}


def test_depth_one_is_every_action_on_every_call_of_every_operation() -> None:
    singles = depth1({"Remove": 2, "Get": 1}, ACTIONS)
    assert len(singles) == 2 * 3 + 1
    assert experiment(Fault("Remove", 2, "drop")) in singles and experiment(Fault("Get", 1, "{error: {when: before}}")) in singles


def test_the_rules_fire_on_exactly_the_kth_calls_even_two_on_one_operation() -> None:
    exp = experiment(Fault("Remove", 2, "drop"), Fault("Remove", 4, "{error: {when: before}}"))
    engine = ChaosEngine(parse_profile(str({"version": 1, "rules": rules(exp)}).replace("'", '"'), "x"))
    fired = [engine.decide(remove(f"v{i}"), now=0).rule for i in range(1, 7)]
    assert fired == [None, "explore-1", None, "explore-2", None, None]


def test_pairs_come_once_each_those_whose_faults_passed_alone_first_in_a_seeded_order() -> None:
    singles = depth1({"Remove": 2, "Get": 1}, {"Remove": ["drop"], "Get": ["{error: {when: before}}"]})
    passed = {experiment(Fault("Remove", 1, "drop")), experiment(Fault("Get", 1, "{error: {when: before}}"))}
    first = list(pairs(singles, passed, random.Random(1)))
    assert first[0] == experiment(Fault("Get", 1, "{error: {when: before}}"), Fault("Remove", 1, "drop"))
    assert len(first) == len(set(first)) == 3
    assert first == list(pairs(singles, passed, random.Random(1)))


def test_keys_round_trip() -> None:
    exp = experiment(Fault("Remove", 3, "{error: {when: after}}"), Fault("Get", 1, "drop"))
    assert from_key(key(exp)) == exp


async def test_the_shrinker_finds_the_smallest_failing_experiment_asking_each_candidate_once() -> None:
    # The workload breaks when any Remove from the second on is dropped or errors after acting.
    def breaks(exp: Experiment) -> bool:
        return any(f.op == "Remove" and f.k >= 2 and f.action in ("drop", "{error: {when: after}}") for f in exp)

    asked: list[Experiment] = []

    async def outcome(exp: Experiment) -> str:
        asked.append(exp)
        await trio.lowlevel.checkpoint()
        return "exit 1" if breaks(exp) else "passed"

    start = experiment(Fault("Get", 1, "{error: {when: before}}"), Fault("Remove", 5, "{error: {when: after}}"))
    minimal = await shrink(start, outcome, ACTIONS)
    assert minimal == experiment(Fault("Remove", 2, "drop"))
    assert len(asked) == len(set(asked))


async def test_a_failure_nothing_smaller_reproduces_stays_as_it_is() -> None:
    async def outcome(exp: Experiment) -> bool:
        return len(exp) == 2  # only the pair breaks it

    pair = experiment(Fault("Get", 1, "{error: {when: before}}"), Fault("Remove", 1, "drop"))
    assert await shrink(pair, outcome, ACTIONS) == pair


async def test_the_shrinker_never_puts_two_faults_on_one_call() -> None:
    async def outcome(exp: Experiment) -> bool:
        return len(exp) == 2  # any pair breaks it

    pair = experiment(Fault("Remove", 1, "drop"), Fault("Remove", 2, "drop"))
    assert await shrink(pair, outcome, ACTIONS) == pair  # Remove#2 cannot move to Remove#1


async def test_the_shrinker_does_not_slip_to_a_smaller_experiment_that_breaks_another_way() -> None:
    # As met on dockerd: a failed Get during `volume rm` then a dropped Remove leave the volume
    # unknown to dockerd (exit 1, unknown-to-daemon); an earlier Get failing alone leaks a mount
    # (exit 1, leaked-mount). Shrinking the pair must not end on that other failure.
    get5, get4, drop = Fault("Get", 5, "{error: {when: before}}"), Fault("Get", 4, "{error: {when: before}}"), Fault("Remove", 1, "drop")

    async def outcome(exp: Experiment) -> tuple[int, tuple[str, ...]]:
        if get4 in exp:
            return 1, ("leaked-mount",)
        if get5 in exp and drop in exp:
            return 1, ("unknown-to-daemon",)
        return 0, ()

    assert await shrink(experiment(get5, drop), outcome, ACTIONS) == experiment(get5, drop)
    assert await shrink(experiment(get4, drop), outcome, ACTIONS) == experiment(get4)


async def test_a_pair_that_is_a_single_fault_in_disguise_shrinks_to_that_single_fault() -> None:
    # On dockerd a failed Get makes it look the volume up again, so with Get#2 failing the rule
    # for Get#5 lands on the call Get#4 is alone: the pair breaks it as Get#4 does.
    get2, get4, get5 = (Fault("Get", k, "{error: {when: before}}") for k in (2, 4, 5))
    singles = [experiment(Fault("Get", k, "{error: {when: before}}")) for k in range(1, 7)]

    async def outcome(exp: Experiment) -> tuple[int, tuple[str, ...]]:
        return (1, ("leaked-mount",)) if exp in (experiment(get4), experiment(get2, get5)) else (0, ())

    assert await shrink(experiment(get2, get5), outcome, ACTIONS, singles) == experiment(get4)
