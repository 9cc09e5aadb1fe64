"""The fault space of a workload, and the shrinker: pure, no I/O.

A fault is one action on the k-th call of one operation; an experiment is one or two faults,
run together. Depth 1 is every single fault the baseline's calls allow; depth 2 draws pairs with
a seeded generator, those whose faults each passed alone first, never the same pair twice. The
shrinker takes a failing experiment to a smallest one that still breaks the workload the same way
(the same exit status and audit kinds): fewer faults (for a pair: either of its faults, then any
single fault already run), then an earlier k, then a simpler action (earlier in the list of
actions), trying each candidate once.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

DEFAULT_ACTIONS: Final = (
    "drop", "{error: {when: before}}", "{error: {when: after}}", "{reset: {when: before}}", "{reset: {when: after}}",
    "ghost", "hide",
)
RULE_PREFIX: Final = "explore-"


@dataclass(frozen=True, slots=True, order=True)
class Fault:
    op: str
    k: int  # the k-th call of `op` in the run, from 1
    action: str  # as a profile writes it (YAML)

    def __str__(self) -> str:
        return f"{self.op}#{self.k} {self.action}"


Experiment = tuple[Fault, ...]  # sorted, 1 or 2 faults


def experiment(*faults: Fault) -> Experiment:
    return tuple(sorted(faults))


def describe(exp: Experiment) -> str:
    return " + ".join(str(fault) for fault in exp) if exp else "(no fault)"


def rules(exp: Experiment) -> list[dict[str, Any]]:
    """The profile rules that make exactly these faults: each fires once, on the k-th call of its
    operation. Rules are tried in order and a call taken by one is not counted by the next, so a
    second fault on the same operation counts from after the first one's call."""
    written = []
    for index, fault in enumerate(exp):
        earlier = sum(1 for other in exp[:index] if other.op == fault.op and other.k < fault.k)
        written.append({
            "name": f"{RULE_PREFIX}{index + 1}", "match": {"op": fault.op}, "after": fault.k - 1 - earlier, "times": 1,
            "action": yaml.safe_load(fault.action),
        })
    return written


def depth1(counts: Mapping[str, int], actions: Mapping[str, Sequence[str]]) -> list[Experiment]:
    """Every single fault: each action that works on the operation, on each of its calls."""
    return [experiment(Fault(op, k, action)) for op in sorted(counts) for action in actions.get(op, ()) for k in range(1, counts[op] + 1)]


def pairs(singles: Sequence[Experiment], passed: set[Experiment], rng: random.Random) -> Iterator[Experiment]:
    """Pairs of single faults, each pair once, in a seeded order: pairs whose faults both passed
    alone first (a failure there is the pair's own), then the rest."""
    faults = [single[0] for single in singles]
    seen: set[Experiment] = set()
    for preferred in (True, False):
        candidates = [
            experiment(a, b) for i, a in enumerate(faults) for b in faults[i + 1:]
            if (experiment(a) in passed and experiment(b) in passed) == preferred and (a.op, a.k) != (b.op, b.k)
        ]
        rng.shuffle(candidates)
        for pair in candidates:
            if pair not in seen:
                seen.add(pair)
                yield pair


def valid(exp: Experiment) -> bool:
    """At most one fault on a call."""
    return len({(fault.op, fault.k) for fault in exp}) == len(exp)


def smaller(exp: Experiment, actions: Mapping[str, Sequence[str]], singles: Sequence[Experiment] = ()) -> Iterator[Experiment]:
    """The experiments one step smaller than `exp`, most promising first: one fault fewer, then
    (for a pair) any other single fault of `singles`, then one fault on an earlier call, then one
    fault with a simpler action (never two on one call).

    Any single fault is smaller than a pair, and the one that breaks the workload the same way
    may not be one of the pair's own: the first fault can shift which call the second one's k
    lands on (a failed Get makes dockerd look the volume up again), so `Get#2 + Get#5` can be
    `Get#4` in disguise."""
    for candidate in _smaller(exp, actions, singles):
        if valid(candidate):
            yield candidate


def _smaller(exp: Experiment, actions: Mapping[str, Sequence[str]], singles: Sequence[Experiment]) -> Iterator[Experiment]:
    if len(exp) > 1:
        for index in range(len(exp)):
            yield exp[:index] + exp[index + 1:]
        yield from singles
    for index, fault in enumerate(exp):
        for k in range(1, fault.k):
            yield _replace(exp, index, Fault(fault.op, k, fault.action))
    for index, fault in enumerate(exp):
        ranked = list(actions.get(fault.op, ()))
        for action in ranked[: ranked.index(fault.action)] if fault.action in ranked else ():
            yield _replace(exp, index, Fault(fault.op, fault.k, action))


def _replace(exp: Experiment, index: int, fault: Fault) -> Experiment:
    return experiment(*exp[:index], fault, *exp[index + 1:])


async def shrink(
    failing: Experiment, outcome: Callable[[Experiment], Awaitable[Hashable]], actions: Mapping[str, Sequence[str]],
    singles: Sequence[Experiment] = (),
) -> Experiment:
    """A smallest experiment that still breaks the workload the way `failing` does: step to the
    first smaller one whose outcome is the same, until none is. An outcome says how a run broke
    (its exit status and audit kinds; anything for a pass). A smaller experiment that breaks it
    another way is a different failure, not this one made smaller: the shrinker does not slip
    from one to the other. Each candidate is asked at most once."""
    current = failing
    target = await outcome(failing)
    asked: set[Experiment] = {failing}
    while True:
        for candidate in smaller(current, actions, singles):
            if not candidate or candidate in asked:
                continue
            asked.add(candidate)
            if await outcome(candidate) == target:
                current = candidate
                break
        else:
            return current


def key(exp: Experiment) -> str:
    """A stable text key for an experiment (state files, the report)."""
    return json.dumps([[fault.op, fault.k, fault.action] for fault in exp])


def from_key(text: str) -> Experiment:
    return experiment(*(Fault(op, k, action) for op, k, action in json.loads(text)))
