"""error: answer with an error, before forwarding (the backend never sees the call) or after
(the backend acted, dockerd is told it failed: the most useful lie, dockerd-behaviour.md §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from chaosvol.core.effects import Forward, Plan, Reply
from chaosvol.core.protocol import Operation, PluginCall, PluginReply, injected_message
from chaosvol.faults import Fault, FaultContext, register


@register("error")
@dataclass(frozen=True, slots=True)
class Error(Fault):
    """Answer `{"Err": message}` with `status`.

    With status 500 (the default) dockerd shows `VolumeDriver.X: message`; with 200 it shows the
    message alone, and Podman ignores it. Without `message`, the text is
    `chaosvol: injected: <Op> failed`, so an injected error is never mistaken for a real one.
    """

    message: str | None = None
    when: Literal["before", "after"] = "before"
    status: int = 500
    example: ClassVar[str] = 'error: {message: "disk on fire", when: after, status: 500}'

    def __post_init__(self) -> None:
        if not 200 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status from 200 to 599, not {self.status}")

    def advice(self) -> list[str]:
        if self.status == 200:
            return ["status 200: Podman ignores Err in a 200 answer, so under Podman this is a silent success, not an error"]
        return []

    def resolve(self, call: PluginCall, context: FaultContext) -> Error:
        """With the message written out: the log says the exact text dockerd got."""
        if self.message is not None:
            return self
        key = (id(self), call.operation)  # by identity: hashing the fields costs more than the rest
        entry = _RESOLVED.get(key)
        if entry is None or entry[0] is not self:  # one per rule and operation: the same answer every time
            entry = _RESOLVED[key] = (self, Error(injected_message(call.operation), self.when, self.status))
        return entry[1]

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        message = self.message if self.message is not None else injected_message(call.operation)
        reply = Reply(PluginReply.error(message, self.status))
        return Plan.of(reply) if self.when == "before" else Plan.of(Forward(), reply)


_RESOLVED: Final[dict[tuple[int, Operation], tuple[Error, Error]]] = {}
