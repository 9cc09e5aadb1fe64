"""The JSON Schema of the profile format, generated from what the loader itself uses.

Keys come from the loader's own key lists, actions and their options from the fault registry
and the fault dataclasses' type hints (the same hints the loader reads options by), so the schema
and the loader cannot drift apart. For editors and CI linters; `chaosvol check` stays the
authority (it also checks what a schema cannot say, such as an action on an operation it does not
support, or the order of several actions).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from chaosvol.durations import DurationMarker
from chaosvol.faults import FAULTS
from chaosvol.profile import _MATCH_KEYS, _RULE_KEYS, _TOP_KEYS, VERSION
from chaosvol.protocol import OPERATION_BY_NAME

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|us|h|m|s))+$"


def profile_schema() -> dict[str, Any]:
    action_options = {word: _options(fault) for word, fault in sorted(FAULTS.items())}
    bare_words = sorted(word for word, fault in FAULTS.items() if not _required(fault))
    operation = {"enum": list(OPERATION_BY_NAME)}
    rule_properties: dict[str, Any] = {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "match": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "op": {"oneOf": [{"$ref": "#/$defs/operation"}, {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/operation"}}]},
                "volume": {"type": "string", "description": "a shell glob on the volume name"},
                "opts": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
            },
        },
        "after": {"type": "integer", "minimum": 0},
        "times": {"type": "integer", "minimum": 0},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "action": {"$ref": "#/$defs/action"},
        "actions": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/action"}},
    }
    assert set(rule_properties) == set(_RULE_KEYS) and set(rule_properties["match"]["properties"]) == set(_MATCH_KEYS)
    top: dict[str, Any] = {
        "version": {"const": VERSION},
        "seed": {"type": "integer", "minimum": 0},
        "description": {"type": "string"},
        "rules": {"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}},
    }
    assert set(top) == set(_TOP_KEYS)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"chaosvol profile, version {VERSION}",
        "type": "object",
        "additionalProperties": False,
        "required": ["version"],
        "properties": top,
        "$defs": {
            "duration": {"oneOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}],
                         "description": "250ms, 2s, 1m30s (units h, m, s, ms, us)"},
            "operation": operation,
            "rule": {
                "type": "object",
                "additionalProperties": False,
                "properties": rule_properties,
                "oneOf": [{"required": ["action"]}, {"required": ["actions"]}],
            },
            "action": {
                "oneOf": [
                    {"enum": bare_words},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "additionalProperties": False,
                        "properties": action_options,
                    },
                ]
            },
        },
    }


def _fields(fault: type[Any]) -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(fault))


def _required(fault: type[Any]) -> list[str]:
    return [f.name for f in _fields(fault) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _options(fault: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(fault, include_extras=True)
    properties = {f.name: _type(hints[f.name]) for f in _fields(fault)}
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties,
                              "description": (fault.__doc__ or "").strip().split("\n")[0]}
    required = _required(fault)
    if required:
        schema["required"] = required
    else:
        schema = {"oneOf": [{"type": "null"}, schema]}  # `word:` with nothing after it
    return schema


def _type(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type(choice) for choice in typing.get_args(hint)]}
    if origin is typing.Annotated:
        base, *markers = typing.get_args(hint)
        return {"$ref": "#/$defs/duration"} if DurationMarker in markers else _type(base)
    if origin is Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin is tuple:
        return {"type": "array", "items": {"type": ["string", "number"]}}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if hint in simple:
        return {"type": simple[hint]} if hint is not str else {"type": ["string", "number", "boolean"]}
    raise TypeError(f"no schema for {hint!r}")
