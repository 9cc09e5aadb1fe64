"""delay: wait before forwarding (`when: before`) or before replying (`when: after`).

A delay never blocks other calls, and one longer than dockerd's timeout still forwards the call
late: that is how a late Create or a leaked Mount is reproduced (dockerd-behaviour.md §4.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from chaosvol.core.durations import Seconds
from chaosvol.core.effects import Forward, Plan, Sleep
from chaosvol.core.protocol import PODMAN_PLUGIN_TIMEOUT, PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("delay")
@dataclass(frozen=True, slots=True)
class Delay(Fault):
    """Wait `duration`, give or take up to `jitter` (uniform, from the rule's seeded stream)."""

    duration: Seconds
    jitter: Seconds = 0.0
    when: Literal["before", "after"] = "before"
    example: ClassVar[str] = "delay: {duration: 2s, jitter: 200ms, when: before}"

    def advice(self) -> list[str]:
        longest = self.duration + self.jitter
        if longest >= PODMAN_PLUGIN_TIMEOUT:
            return [f"a delay of up to {longest:g}s is past Podman's {PODMAN_PLUGIN_TIMEOUT:g}s plugin timeout: under Podman the call fails (no retry)"]
        return []

    def draws(self) -> bool:
        return bool(self.jitter)

    def nominal(self) -> Delay:
        return Delay(self.duration, 0.0, self.when)

    def resolve(self, call: PluginCall, context: FaultContext) -> Delay:
        """The delay this call gets: the jitter drawn (to the microsecond), none left."""
        if not self.jitter:
            return self
        seconds = max(0.0, self.duration + context.random.uniform(-self.jitter, self.jitter))
        return Delay(round(seconds, 6), 0.0, self.when)

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        seconds = self.resolve(call, context).duration
        if self.when == "before":
            return Plan.of(Sleep(seconds), Forward())
        return Plan.of(Forward(), Sleep(seconds))
