"""The one reader of a fault's option types: what each field of a fault dataclass accepts.

The profile loader, the JSON Schema and replay all ask `option_specs(fault)` and match on the
kinds below; none of them reads Python type hints itself. What a fault may use as an option
type: `Seconds` (a duration), `Literal[...]` (a choice), `str`, `int`, `float`, `bool`,
`tuple[str, ...]` (names), `X | None`, and unions of those (`Seconds | Literal["never"]`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from chaosvol.core.durations import DurationMarker


class Simple(enum.Enum):
    """The kinds that need nothing more said."""

    DURATION = "seconds; a profile writes 250ms, 2s, 1m30s (or a bare 0)"
    TEXT = "a string"
    FLAG = "true or false"
    INTEGER = "a whole number"
    NUMBER = "a number"
    NAMES = "a list of names (a tuple of str)"
    NULL = "null"


@dataclass(frozen=True, slots=True)
class Choice:
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class OneOf:
    """Any of `kinds`, tried in order (`Simple.NULL` among them: the option may be null)."""

    kinds: tuple[OptionKind, ...]


OptionKind: TypeAlias = Simple | Choice | OneOf


@dataclass(frozen=True, slots=True)
class OptionSpec:
    name: str
    kind: OptionKind
    required: bool


def option_kind(hint: Any) -> OptionKind:
    """The kind of a field annotated `hint`.

    Raises:
        TypeError: a type no fault may use (a bug in the fault module).
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return OneOf(tuple(option_kind(choice) for choice in typing.get_args(hint)))
    if origin is typing.Annotated:
        base, *markers = typing.get_args(hint)
        return Simple.DURATION if DurationMarker in markers else option_kind(base)
    if origin is Literal:
        return Choice(typing.get_args(hint))
    if origin is tuple and typing.get_args(hint) == (str, ...):
        return Simple.NAMES
    simple = {str: Simple.TEXT, bool: Simple.FLAG, int: Simple.INTEGER, float: Simple.NUMBER, type(None): Simple.NULL}
    if hint in simple:
        return simple[hint]
    raise TypeError(f"a fault's option cannot be of type {hint!r}")


def option_specs(fault: type[Any]) -> tuple[OptionSpec, ...]:
    """Every option of the fault dataclass `fault`, in field order."""
    specs = _SPECS.get(fault)
    if specs is None:
        hints = typing.get_type_hints(fault, include_extras=True)
        specs = _SPECS[fault] = tuple(
            OptionSpec(f.name, option_kind(hints[f.name]), f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(fault)
        )
    return specs


_SPECS: dict[type[Any], tuple[OptionSpec, ...]] = {}


def is_duration(kind: OptionKind) -> bool:
    """Whether a value of this kind can be a duration (a Duration, or a union holding one)."""
    if isinstance(kind, OneOf):
        return any(is_duration(choice) for choice in kind.kinds)
    return kind is Simple.DURATION
