"""hide: the backend keeps a volume that the daemon is told does not exist.

On Get the answer is "no such volume" (dockerd then purges its metadata: labels and options are
lost, and `docker run -v NAME:` falls back to a `local` volume, dockerd-behaviour.md §4.7). On
List the volume is left out of the answer (hidden from `docker volume ls` only, §4.11). With a
`volume` pattern, List hides the entries it matches; without one, every entry.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, ClassVar

from chaosvol.core.effects import Forward, Plan, Reply, Rewrite
from chaosvol.core.protocol import Operation, PluginCall, PluginReply, field_of
from chaosvol.faults import Fault, FaultContext, register


@register("hide")
@dataclass(frozen=True, slots=True)
class Hide(Fault):
    """Get says the volume does not exist; List omits it; the backend keeps it."""

    example: ClassVar[str] = "hide"
    operations: ClassVar[frozenset[Operation]] = frozenset({Operation.GET, Operation.LIST})
    sees_list_entries: ClassVar[bool] = True

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        if call.operation is Operation.LIST:
            return Plan.of(Forward(), Rewrite(OmitFromList(context.volume_pattern or "*")))
        message = f"chaosvol: injected: hide: no such volume: {call.volume!r}"
        return Plan.of(Reply(PluginReply.error(message)))


@dataclass(frozen=True, slots=True)
class OmitFromList:
    pattern: str

    def apply(self, reply: PluginReply) -> PluginReply:
        value = reply.decoded()
        if reply.is_error or not isinstance(value, dict):
            return reply
        volumes = field_of(value, "Volumes") or []
        kept = [v for v in volumes if not _name_matches(v, self.pattern)]
        return reply.with_fields(Volumes=kept)

    def __str__(self) -> str:
        return f"omit {self.pattern!r} from List"


def _name_matches(entry: Any, pattern: str) -> bool:
    name = field_of(entry, "Name") if isinstance(entry, dict) else None
    return isinstance(name, str) and fnmatch.fnmatchcase(name, pattern)
