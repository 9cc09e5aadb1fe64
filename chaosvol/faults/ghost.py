"""ghost: report volumes the backend does not have.

List adds the ghosts; Get of a ghost name answers a volume. `docker volume create` of a ghost
name then exits 0 and the backend never sees Create; Mount and Remove of it fail later
(dockerd-behaviour.md §4.11). Get of any other name is forwarded untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaosvol.core.effects import Forward, Plan, Reply, Rewrite
from chaosvol.core.protocol import Operation, PluginCall, PluginReply, field_of
from chaosvol.faults import Fault, FaultContext, register

GHOST_STATUS = {"chaosvol": "ghost: injected, the backend has no such volume"}
GHOST_MOUNTPOINTS = "/nonexistent/chaosvol-ghost"


@register("ghost")
@dataclass(frozen=True, slots=True)
class Ghost(Fault):
    """Volumes named in `names` exist for List and Get, and nowhere else. Without `names`, the
    volume a Get asks for exists (on Get only: List has no name to add)."""

    names: tuple[str, ...] | None = None  # None: the volume a Get asks for
    example: ClassVar[str] = "ghost: {names: [ghost-a, ghost-b]}"
    operations: ClassVar[frozenset[Operation]] = frozenset({Operation.GET, Operation.LIST})

    def __post_init__(self) -> None:
        if self.names is not None and not self.names:
            raise ValueError("ghost needs at least one name in names (or no names: the volume a Get asks for)")

    def operations_problem(self, operations: frozenset[Operation]) -> str | None:
        if self.names is None and Operation.LIST in operations:
            return "ghost without names makes the volume a Get asks for exist; List needs names to add: add op: Get, or give names"
        return None

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if call.operation is Operation.LIST:
            return Plan.of(Forward(), Rewrite(AddToList(self.names or ())))
        if self.names is None or call.volume in self.names:
            # A Mountpoint as a real plugin's Get gives one: a path under a directory that does not
            # exist, since nothing backs the ghost (`docker volume inspect` shows it).
            volume = {"Name": call.volume, "Mountpoint": f"{GHOST_MOUNTPOINTS}/{call.volume}", "Status": GHOST_STATUS}
            return Plan.of(Reply(PluginReply.json({"Volume": volume, "Err": ""})))
        return Plan.of(Forward())


@dataclass(frozen=True, slots=True)
class AddToList:
    names: tuple[str, ...]

    def apply(self, reply: PluginReply) -> PluginReply:
        value = reply.decoded()
        if reply.is_error or not isinstance(value, dict):
            return reply
        volumes = list(field_of(value, "Volumes") or [])
        present = {field_of(v, "Name") for v in volumes if isinstance(v, dict)}
        volumes.extend({"Name": name} for name in self.names if name not in present)
        return reply.with_fields(Volumes=volumes)

    def __str__(self) -> str:
        return f"add {', '.join(self.names)} to List"
