"""The fault registry: one small module per profile action, registered under its word.

A fault is a frozen dataclass whose fields are the action's options. The profile loader reads
YAML into those fields by their types (`Seconds` for durations, `Literal` for choices, `str`,
`int`, `float`, `bool`, `tuple[str, ...]`), so adding a fault means writing one module: nothing
else lists the faults. Class variables a fault may set:

* `operations`: the only operations it makes sense on (a profile using it elsewhere is refused);
* `example`: how a profile writes it (shown in `chaosvol check` messages and in tests);
* `sees_list_entries`: it acts on the volumes inside a List answer, so a rule's `volume`
  pattern selects those entries instead of keeping the rule away from List.

A fault may also define `advice(self) -> list[str]`: what a profile author should know about
these options (for example, that a client such as Podman reads the fault differently);
`chaosvol check` prints it as warnings.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar

from chaosvol.effects import Plan
from chaosvol.protocol import Operation, PluginCall


@dataclass(frozen=True, slots=True)
class FaultContext:
    """What a fault may know when it plans one call.

    Attributes:
        random: the rule's own seeded stream (draw only from this).
        now: the shell's clock, in seconds.
        fired: how many times the rule has fired, this call included.
        volume_pattern: the rule's `volume` glob, for faults that filter List entries.
    """

    random: random.Random
    now: float
    fired: int
    volume_pattern: str | None = None


class Fault(Protocol):
    word: ClassVar[str]
    example: ClassVar[str]
    operations: ClassVar[frozenset[Operation] | None]
    sees_list_entries: ClassVar[bool]

    def plan(self, call: PluginCall, context: FaultContext) -> Plan: ...


FAULTS: Final[dict[str, type[Any]]] = {}

F = TypeVar("F", bound=type[Any])


def register(word: str) -> Callable[[F], F]:
    """Register a fault class under its profile word. Put it above `@dataclass`."""

    def decorate(cls: F) -> F:
        if word in FAULTS:
            raise RuntimeError(f"two faults registered as {word!r}")
        cls.word = word
        for name, default in (("operations", None), ("sees_list_entries", False)):
            if name not in vars(cls) and not any(name in vars(base) for base in cls.__mro__[1:-1]):
                setattr(cls, name, default)
        FAULTS[word] = cls
        return cls

    return decorate


def load_faults() -> None:
    """Import every sibling module, which registers its fault. Idempotent."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


load_faults()
