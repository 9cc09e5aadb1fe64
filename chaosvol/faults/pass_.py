"""pass: forward the call untouched (shields some calls from the rules below it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaosvol.core.effects import Forward, Plan
from chaosvol.core.protocol import PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("pass")
@dataclass(frozen=True, slots=True)
class Pass(Fault):
    """Forward the call as if no rule matched; the rule's counters still count it."""

    example: ClassVar[str] = "pass"

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        return Plan.of(Forward())
