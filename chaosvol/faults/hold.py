"""hold: park the call until the test lets it go on, to schedule a race by hand.

`chaosvol ctl release` (or the pytest plugin's `release()`) lets a held call go on; `timeout`
lets it go on by itself after a while. `when: before` (the default) holds the call before the
backend sees it; `when: after` forwards it at once and holds the answer, so the backend has
acted and dockerd does not know yet: holding List `after` while a `docker volume rm` completes
reproduces the List/Remove race of moby#21403 exactly, with no timing involved.

A held call costs its connection only, never a lock: other calls, the control socket and
Activate go on. dockerd still applies its own timeouts (60 s for List, 120 s for Create and Mount,
dockerd-behaviour.md §2.1): release before them, or the answer goes to nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from chaosvol.core.durations import Seconds
from chaosvol.core.effects import Forward, Plan
from chaosvol.core.effects import Hold as HoldEffect
from chaosvol.core.protocol import PODMAN_PLUGIN_TIMEOUT, PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("hold")
@dataclass(frozen=True, slots=True)
class Hold(Fault):
    """Park the call until released, or for at most `timeout` (default: no limit)."""

    timeout: Seconds | None = None
    when: Literal["before", "after"] = "before"
    example: ClassVar[str] = "hold: {timeout: 30s, when: after}"

    def advice(self) -> list[str]:
        if self.timeout is None or self.timeout >= PODMAN_PLUGIN_TIMEOUT:
            return [f"a hold longer than {PODMAN_PLUGIN_TIMEOUT:g}s outlasts Podman's plugin timeout: release it sooner under Podman"]
        return []

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if self.when == "before":
            return Plan.of(HoldEffect(self.timeout), Forward())
        return Plan.of(Forward(), HoldEffect(self.timeout))
