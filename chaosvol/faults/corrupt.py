"""corrupt: answer 200 with a broken body, or rewrite Mount's `Mountpoint`.

By default the call is forwarded first (the backend acted) and its answer is then spoiled:
`body: empty` (dockerd: `EOF`), `garbage` (`invalid character '<' ...`), `truncated` (the first
half of the real answer), or `mountpoint: PATH` (`""` mounts the runtime's bundle directory
into the container, dockerd-behaviour.md §4.8).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from chaosvol.core.effects import Forward, Plan, Reply, Rewrite
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.faults import Fault, FaultContext, register

GARBAGE = b"<html><body>chaosvol: injected: garbage</body></html>\n"
MOUNTPOINT_OPERATIONS = frozenset({Operation.MOUNT, Operation.PATH})


@register("corrupt")
@dataclass(frozen=True, slots=True)
class Corrupt(Fault):
    """Spoil the answer: exactly one of `body` or `mountpoint`; `forward: false` keeps the call
    from the backend (the broken answer is then all there is)."""

    body: Literal["empty", "garbage", "truncated"] | None = None
    mountpoint: str | None = None
    forward: bool = True
    example: ClassVar[str] = "corrupt: {body: garbage}"

    def __post_init__(self) -> None:
        if (self.body is None) == (self.mountpoint is None):
            raise ValueError("corrupt needs exactly one of body (empty, garbage, truncated) or mountpoint")

    def operations_problem(self, operations: frozenset[Operation]) -> str | None:
        if self.mountpoint is not None and not operations <= MOUNTPOINT_OPERATIONS:
            return "corrupt: {mountpoint: ...} rewrites the answer of Mount or Path only; add op: Mount"
        return None

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if self.mountpoint is not None:
            edit: SetMountpoint | CorruptBody = SetMountpoint(self.mountpoint)
        else:
            assert self.body is not None
            edit = CorruptBody(self.body)
        if self.forward:
            return Plan.of(Forward(), Rewrite(edit))
        start = PluginReply.json({"Mountpoint": "", "Err": ""}) if self.mountpoint is not None else PluginReply.ok()
        return Plan.of(Reply(start), Rewrite(edit))


@dataclass(frozen=True, slots=True)
class CorruptBody:
    mode: Literal["empty", "garbage", "truncated"]

    def apply(self, reply: PluginReply) -> PluginReply:
        if self.mode == "empty":
            body = b""
        elif self.mode == "garbage":
            body = GARBAGE
        else:
            body = reply.body[: len(reply.body) // 2] if len(reply.body) > 1 else b"{"
        return PluginReply(200, body, reply.content_type)

    def __str__(self) -> str:
        return f"body {self.mode}"


@dataclass(frozen=True, slots=True)
class SetMountpoint:
    path: str

    def apply(self, reply: PluginReply) -> PluginReply:
        # A real failure stays visible: we only lie about success.
        if reply.is_error:
            return reply
        return reply.with_fields(Mountpoint=self.path)

    def __str__(self) -> str:
        return f"mountpoint {self.path!r}"
