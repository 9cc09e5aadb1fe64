"""The fault registry: one small module per profile action, registered under its word.

A fault is a frozen dataclass deriving from `Fault`, registered with `@register("word")`; its
fields are the action's options. The profile loader, the JSON Schema and replay read the options
through chaosvol.core.options (`Seconds` for durations, `Literal` for choices, `str`, `int`,
`float`, `bool`, `tuple[str, ...]`), so adding a fault means writing one module: nothing else
lists the faults. What `Fault` declares, with its defaults:

* `example` (required): how a profile writes it (in `chaosvol check` messages and in tests);
* `plan(call, context)` (required): the effects for one call;
* `operations` (None: any): the only operations it makes sense on (elsewhere it is refused);
* `sees_list_entries` (False): it acts on the volumes inside a List answer, so a rule's `volume`
  pattern selects those entries instead of keeping the rule away from List;
* `advice()` ([]): what a profile author should know about these options (a client such as
  Podman reads the fault differently); `chaosvol check` prints it as warnings;
* `operations_problem(operations)` (None): why these options cannot work on those operations,
  beyond `operations` (corrupt's `mountpoint` needs Mount or Path);
* `resolve(call, context)` (itself): the same fault with every choice made for this call (a
  delay's drawn duration and no jitter). The engine plans from the resolved fault, and the event
  log records it, so a run can be replayed from its log alone;
* `draws()` (False): whether it draws from the rule's random stream with these options
  (`chaosvol serve` then says a random seed was chosen), and `nominal()` (itself): the same
  fault drawing nothing (what replay uses when a log did not record the draw).
"""


from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self, TypeVar

from chaosvol.core.durations import format_duration
from chaosvol.core.effects import Plan
from chaosvol.core.options import is_duration, option_specs
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


class Fault:
    """What every fault is: the base of each registered fault class (a frozen dataclass whose
    fields are its options). A fault writes `plan` and `example`; the rest has a default."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every fault is a dataclass

    word: ClassVar[str]  # set by @register
    example: ClassVar[str]  # how a profile writes it
    operations: ClassVar[frozenset[Operation] | None] = None  # None: any operation
    sees_list_entries: ClassVar[bool] = False

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        raise NotImplementedError

    def resolve(self, call: PluginCall, context: FaultContext) -> Self:
        """The same fault with every choice made for this call (default: nothing to choose)."""
        return self

    def draws(self) -> bool:
        """Whether it draws from the rule's random stream with these options."""
        return False

    def nominal(self) -> Self:
        """The same fault drawing nothing (replay's stand-in when a log did not record a draw)."""
        return self

    def advice(self) -> list[str]:
        """What a profile author should know about these options (`chaosvol check` warnings)."""
        return []

    def operations_problem(self, operations: frozenset[Operation]) -> str | None:
        """Why these options cannot work on those operations, beyond `operations`."""
        return None


FAULTS: Final[dict[str, type[Fault]]] = {}

F = TypeVar("F", bound=type[Fault])


def register(word: str) -> Callable[[F], F]:
    """Register a fault class under its profile word. Put it above `@dataclass`."""

    def decorate(cls: F) -> F:
        if word in FAULTS:
            raise RuntimeError(f"two faults registered as {word!r}")
        if cls.plan is Fault.plan or not dataclasses.is_dataclass(cls) or "example" not in vars(cls):
            raise TypeError(f"fault {word!r}: a dataclass deriving from Fault, with `example` and `plan`")
        cls.word = word
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
    durations = {spec.name for spec in option_specs(FAULTS[word]) if is_duration(spec.kind)}
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


def load_faults() -> None:
    """Import every sibling module, which registers its fault. Idempotent."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


load_faults()
