"""hang: never answer, so dockerd times out (Create and Mount after 120 s, the rest after 60 s,
Activate never). The call is forwarded first, never, or after a while (a late backend action).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from chaosvol.core.durations import Seconds
from chaosvol.core.effects import Forward, Plan, Sleep
from chaosvol.core.effects import Hang as HangEffect
from chaosvol.core.protocol import PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("hang")
@dataclass(frozen=True, slots=True)
class Hang(Fault):
    """Hold the connection open without answering until dockerd hangs up.

    `forward`: `never` (the default: the backend never sees the call), `before` (the backend
    acts at once), or a duration after which the backend gets the call, late.
    """

    forward: Seconds | Literal["before", "never"] = "never"
    example: ClassVar[str] = "hang: {forward: 130s}"

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if self.forward == "never":
            return Plan.of(HangEffect())
        if self.forward == "before":
            return Plan.of(Forward(), HangEffect())
        return Plan.of(Sleep(float(self.forward)), Forward(), HangEffect())
