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
`chaosvol check` prints it as warnings (default: none). And `operations_problem(self,
operations) -> str | None`: why these options cannot work on those operations, beyond
`operations` (default: None; corrupt's `mountpoint` needs Mount or Path).

A fault that draws from the rule's random stream or leaves something to the call (a default
message) defines `resolve(self, call, context)`: the same fault with every choice made for this
call (a delay's drawn duration and no jitter). The engine plans from the resolved fault, and
the event log records it, so a run can be replayed from its log alone. The default is the
fault itself. One that draws with its options says so with `draws(self) -> bool` (default
False: `chaosvol serve` then says a random seed was chosen) and gives `nominal(self)`, the same
fault drawing nothing (default: itself; what replay uses when a log did not record the draw).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import random
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar

from chaosvol.core.durations import DurationMarker, format_duration
from chaosvol.core.effects import Plan
from chaosvol.core.protocol import Operation, PluginCall


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

    def resolve(self, call: PluginCall, context: FaultContext) -> Any: ...

    def draws(self) -> bool: ...

    def nominal(self) -> Any: ...

    def advice(self) -> list[str]: ...

    def operations_problem(self, operations: frozenset[Operation]) -> str | None: ...


def _unresolved(self: Any, call: PluginCall, context: FaultContext) -> Any:
    return self  # nothing drawn, nothing left to the call: the fault is its own decision


def _draws_nothing(self: Any) -> bool:
    return False


def _itself(self: Any) -> Any:
    return self


def _no_advice(self: Any) -> list[str]:
    return []


def _no_problem(self: Any, operations: frozenset[Operation]) -> str | None:
    return None


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
        methods: tuple[tuple[str, Callable[..., Any]], ...] = (
            ("resolve", _unresolved), ("draws", _draws_nothing), ("nominal", _itself),
            ("advice", _no_advice), ("operations_problem", _no_problem),
        )
        for method, implementation in methods:
            if method not in vars(cls):
                setattr(cls, method, implementation)
        FAULTS[word] = cls
        return cls

    return decorate


def options_of(fault: Any) -> dict[str, Any]:
    """A fault's options as JSON values, every one written (defaults too): durations in
    seconds, choices as their words, lists as lists. What the event log records."""
    options: dict[str, Any] = {}
    for item in dataclasses.fields(fault):
        value = getattr(fault, item.name)
        options[item.name] = list(value) if isinstance(value, tuple) else value
    return options


def profile_action(word: str, options: Mapping[str, Any]) -> Any:
    """An action as a profile writes it, from the options a log recorded: durations spelled
    (`312.734ms`), options that are null left out. `drop` alone when nothing is left.

    Raises:
        KeyError: no fault is called `word`.
    """
    fault = FAULTS[word]
    durations = {name for name, hint in typing.get_type_hints(fault, include_extras=True).items() if _is_duration(hint)}
    written: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in durations and isinstance(value, int | float) and not isinstance(value, bool):
            written[name] = format_duration(float(value))
        else:
            written[name] = value
    return {word: written} if written else word


def describe_action(word: str, options: Mapping[str, Any]) -> str:
    """One line a person reads: `delay: {duration: 312.734ms, jitter: 0s, when: before}`."""
    try:
        action = profile_action(word, options)
    except KeyError:
        action = {word: dict(options)} if options else word
    if isinstance(action, str):
        return action
    ((name, written),) = action.items()
    inner = ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False) if not isinstance(value, str) or _needs_quotes(value) else value}"
                      for key, value in written.items())
    return f"{name}: {{{inner}}}"


def _needs_quotes(text: str) -> bool:
    return not text or any(c in text for c in ":{}[],#&*!|>'\"%@`") or text != text.strip()


def _is_duration(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        return DurationMarker in typing.get_args(hint)[1:]
    return any(_is_duration(arg) for arg in typing.get_args(hint))


def load_faults() -> None:
    """Import every sibling module, which registers its fault. Idempotent."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


load_faults()
