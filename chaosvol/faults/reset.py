"""reset: close the connection without an answer. dockerd sees a transport error and retries on
a new connection, with an empty body once it had sent the first one (moby#39331); the answer to
that retry is what the user gets (dockerd-behaviour.md §4.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from chaosvol.core.effects import Forward, Plan
from chaosvol.core.effects import Reset as ResetEffect
from chaosvol.core.protocol import PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("reset")
@dataclass(frozen=True, slots=True)
class Reset(Fault):
    """Close the connection: `when: before` (the backend never sees the call) or `after`."""

    when: Literal["before", "after"] = "before"
    example: ClassVar[str] = "reset: {when: after}"

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if self.when == "before":
            return Plan.of(ResetEffect())
        return Plan.of(Forward(), ResetEffect())
