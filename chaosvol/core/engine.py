"""The decision core: ChaosEngine turns one PluginCall into one Decision.

It never awaits and never reads a clock (callers pass `now`); it draws randomness only from
per-rule streams seeded by the run (`random.Random(f"{seed}/{rule name}")`), and only for rules
that matched and are eligible, so adding a rule never shifts another rule's draws. Same profile,
seed and sequence of calls: same decisions, every time.

Rules are checked in order; the first rule that matches and fires decides the call. A rule
counts every call that matches it (`matched`); it is eligible once `after` calls have gone by and
while it has fired fewer than `times`; an eligible rule fires with its `probability`. A call no
rule fires on is forwarded untouched. A rule with `from_activation: N` looks at no call (counts
none) until the engine has seen N Activate calls: the daemon's Nth lifetime.

At run time (the control socket) rules can be disabled (skipped as if absent, their counters
frozen) and the whole engine paused (`paused=True`: rules count the calls they match, so `after`
keeps counting, but none fires and no random number is drawn).
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chaosvol.core.effects import Forward, Plan
from chaosvol.core.profile import Profile, Rule
from chaosvol.core.protocol import Operation, PluginCall
from chaosvol.faults import Fault, FaultContext

PASS_PLAN: Final = Plan.of(Forward())


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one call: the rule that fired (None: no rule) and its plan."""

    rule: str | None
    action: str | None
    plan: Plan
    rule_index: int | None = None  # the rule's place in the profile, from 0
    actions: tuple[Fault, ...] = ()  # the rule's actions resolved for this call (random choices made)
    volume_pattern: str | None = None  # the rule's volume glob (for List, the entries it acts on)

    @property
    def injected(self) -> bool:
        return self.rule is not None


PASS: Final = Decision(None, None, PASS_PLAN)


@dataclass(slots=True)
class RuleState:
    """A rule's counters. The only mutable state of the core."""

    matched: int = 0
    fired: int = 0
    last_fired_at: float | None = None


@dataclass(frozen=True, slots=True)
class RuleStatistics:
    name: str
    action: str
    matched: int
    fired: int
    last_fired_at: float | None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    seed: int
    rules: dict[str, RuleStatistics] = field(default_factory=dict)


class ChaosEngine:
    """Decides the fate of every call under one profile and seed."""

    def __init__(self, profile: Profile, *, seed: int | None = None, activations: int = 0) -> None:
        """Args:
            profile: the rules.
            seed: overrides the profile's seed; with neither, 0.
            activations: Activate calls already seen (a profile loaded at run time counts on
                from the proxy's count, so `from_activation` means the same whenever it is loaded).
        """
        self.profile = profile
        self.activations = activations
        self.seed: int = seed if seed is not None else profile.seed if profile.seed is not None else 0
        self._rules: list[tuple[Rule, RuleState, random.Random, bool]] = [
            (rule, RuleState(), random.Random(f"{self.seed}/{rule.name}"), rule.sees_list_entries)
            for rule in profile.rules
        ]
        self._index: dict[str, int] = {rule.name: index for index, rule in enumerate(profile.rules)}
        # Each call is checked only against the rules that can match its operation, in order:
        # with a hundred rules, a Get looks at the Get rules alone.
        self.disabled: set[str] = set()
        self._by_operation: dict[Operation, list[tuple[Rule, RuleState, random.Random, bool]]] = {
            operation: [entry for entry in self._rules if operation in entry[0].match.operations] for operation in Operation
        }
        # And when every one of those rules names volumes, one regex of all their globs tells
        # whether any can match a call's volume: a call that none matches skips the loop.
        self._any_volume: dict[Operation, Callable[[str], object]] = {}
        for operation, entries in self._by_operation.items():
            globs = [entry[0].match.volume for entry in entries]
            if entries and all(glob is not None for glob in globs):
                self._any_volume[operation] = re.compile("|".join(fnmatch.translate(glob) for glob in globs if glob is not None)).match

    def decide(self, call: PluginCall, *, now: float, paused: bool = False) -> Decision:
        """The Decision for `call`. With `paused`, matches are counted and PASS is returned.

        Returns:
            `PASS` (forward untouched) when no rule fires; else a Decision naming the rule, its
            action word(s) and the plan, one of: an answer made up without the backend
            (`Reply`), the backend's answer altered (`Forward` then `Reply`/`Rewrite`), waits
            around the forward (`Sleep`), or no answer at all (ending in `Hang` or `Reset`).
        """
        if call.operation is Operation.ACTIVATE:
            self.activations += 1
        if call.volume is not None and (any_volume := self._any_volume.get(call.operation)) is not None and any_volume(call.volume) is None:
            return PASS  # no rule's glob matches the volume: nothing to count, nothing fires
        disabled = self.disabled
        for rule, state, stream, sees_list_entries in self._by_operation[call.operation]:
            if disabled and rule.name in disabled:
                continue
            if rule.from_activation > self.activations:
                continue
            if not rule.match.matches(call, sees_list_entries):
                continue
            state.matched += 1
            if paused or state.matched <= rule.after:
                continue
            if rule.times is not None and state.fired >= rule.times:
                continue
            if rule.probability < 1.0 and not stream.random() < rule.probability:
                continue
            state.fired += 1
            state.last_fired_at = now
            context = FaultContext(stream, now, state.fired, rule.match.volume)
            actions, plan = rule.decide(call, context)
            return Decision(rule.name, rule.action_label, plan, self._index[rule.name], actions, rule.match.volume)
        return PASS

    @property
    def rule_names(self) -> list[str]:
        return [rule.name for rule in self.profile.rules]

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable the rule called `name`.

        Raises:
            KeyError: no rule has that name.
        """
        if name not in self.rule_names:
            raise KeyError(name)
        if enabled:
            self.disabled.discard(name)
        else:
            self.disabled.add(name)

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            self.seed,
            {
                rule.name: RuleStatistics(
                    rule.name, rule.action_label, state.matched, state.fired, state.last_fired_at, rule.name not in self.disabled
                )
                for rule, state, _, _ in self._rules
            },
        )
