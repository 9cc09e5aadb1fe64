"""drop: answer success without forwarding, so the backend never sees the call.

The classic: a dropped Remove. dockerd forgets the volume (and its labels), the backend keeps
it, and the next List brings it back without labels (dockerd-behaviour.md §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaosvol.core.effects import Plan, Reply
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.faults import Fault, FaultContext, register


@register("drop")
@dataclass(frozen=True, slots=True)
class Drop(Fault):
    """Answer `{"Err": ""}` (success) and never forward the call."""

    example: ClassVar[str] = "drop"
    # Only operations whose success carries no data: a Mount or Get "success" needs an answer
    # we would have to invent (use corrupt or ghost for those).
    operations: ClassVar[frozenset[Operation]] = frozenset(
        {Operation.CREATE, Operation.REMOVE, Operation.UNMOUNT}
    )

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        return Plan.of(Reply(PluginReply.ok()))
