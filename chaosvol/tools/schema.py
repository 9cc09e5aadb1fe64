"""The JSON Schema of the profile format, generated from what the loader itself uses.

Keys come from the loader's own key lists, actions and their options from the fault registry
and the fault dataclasses' type hints (the same hints the loader reads options by), so the schema
and the loader cannot drift apart. For editors and CI linters; `chaosvol check` stays the
authority (it also checks what a schema cannot say, such as an action on an operation it does not
support, or the order of several actions).
"""

from __future__ import annotations

from typing import Any, assert_never

from chaosvol.core import options
from chaosvol.core.events import SCHEMA
from chaosvol.core.profile import _MATCH_KEYS, _RULE_KEYS, _TOP_KEYS, VERSION
from chaosvol.core.protocol import OPERATION_BY_NAME
from chaosvol.faults import FAULTS

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
                "retry": {"type": "boolean", "description": "true: only dockerd's empty-body retries (volume matched through "
                          "the call they retry); false: only first attempts"},
            },
        },
        "after": {"type": "integer", "minimum": 0},
        "from_activation": {"type": "integer", "minimum": 1, "description": "look at no call until the proxy has seen this many "
                            "Activate calls: 2 = once the daemon activated the plugin again (after it restarted)"},
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


def events_schema() -> dict[str, Any]:
    """The JSON Schema of an event log's lines (event schema 2): a `header` line opening each run,
    a `load` line when another profile takes over, and one line per call."""
    decision_actions = {
        word: {"type": "object", "additionalProperties": False, "required": [spec.name for spec in options.option_specs(fault)],
               "properties": {spec.name: _type(spec.kind, in_log=True) for spec in options.option_specs(fault)}}
        for word, fault in sorted(FAULTS.items())
    }
    answer = {
        "type": ["object", "null"],
        "properties": {
            "status": {"type": "integer", "description": "the HTTP status"},
            "err": {"type": ["string", "null"], "description": "the answer's Err; null when empty or absent (dockerd's no error)"},
            "error": {"type": ["string", "null"], "description": "backend only: it gave no answer (unreachable, cut, timed out)"},
            "found": {"type": "boolean", "description": "Get only: whether the answer carried a volume"},
            "bytes": {"type": "integer", "minimum": 0, "description": "reply of a faulted call only: the body's size as sent"},
        },
        "additionalProperties": False,
    }
    nullable_string = {"type": ["string", "null"]}
    call_properties: dict[str, Any] = {
        "t": {"type": "string", "description": "when the call arrived, RFC 3339 UTC with microseconds"},
        "seq": {"type": "integer", "minimum": 0, "description": "the call's number in its run, from 1"},
        "conn": {"type": "integer", "minimum": 0, "description": "the daemon's connection, numbered in the run"},
        "op": {**nullable_string, "description": "the operation (Create, Remove, ...), or the target of a refused request"},
        "volume": nullable_string, "mount_id": nullable_string,
        "rule": {**nullable_string, "description": "the rule that fired; null: none did (passed through)"},
        "action": {**nullable_string, "description": "the rule's action words, joined by +"},
        "rule_index": {"type": ["integer", "null"], "minimum": 0, "description": "the rule's place in its profile, from 0"},
        "decision": {
            "description": "what the rule did, resolved: its actions with every option (durations in seconds, jitter "
                           "drawn) and the rule's volume glob; null when no rule fired",
            "oneOf": [{"type": "null"}, {
                "type": "object", "additionalProperties": False, "required": ["actions", "volume"],
                "properties": {
                    "actions": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                        "properties": decision_actions}},
                    "volume": nullable_string,
                },
            }],
        },
        "forwarded": {"type": "boolean", "description": "whether the backend was asked"},
        "backend": {**answer, "description": "what the backend answered; null when it was not asked"},
        "reply": {**answer, "description": "what the daemon was sent; null when nothing was (see outcome)"},
        "ms": {"type": "number", "minimum": 0, "description": "from arrival until answered, cut or abandoned"},
        "retry": {"type": "boolean", "description": "an empty body where dockerd always sends one: its retry"},
        "retry_of": {"type": ["integer", "null"], "minimum": 0,
                     "description": "a retry: the seq of the call it retries, whose volume and mount_id it carries"},
        "retry_link": {**nullable_string, "description": "a retry without retry_of: why it could not be linked"},
        "outcome": {"enum": ["answered", "hung", "reset", "client-gone", "cut", "refused", "crashed"]},
        "injected": {"type": "boolean", "description": "a rule fired (an injected fault, never a real failure)"},
        "opts": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                 "description": "a Create's options; values of credential-like names are <redacted>"},
        "held": {"enum": [None, "released", "timeout", "cancelled"], "description": "how a hold ended"},
    }
    profile = {"type": "object", "required": ["source", "sha256", "rules"], "additionalProperties": False, "properties": {
        "source": {"type": "string"}, "sha256": nullable_string, "rules": {"type": "integer", "minimum": 0}}}
    common = {"schema": {"const": SCHEMA}, "chaosvol": {"type": "string"}, "t": {"type": "string"},
              "seed": {"type": "integer", "minimum": 0}, "profile": profile}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"chaosvol event log line, event schema {SCHEMA}",
        "description": "One JSON object a line. Logs of event schema 1 (no header line) have call lines without "
                       "rule_index and decision.",
        "oneOf": [{"$ref": "#/$defs/header"}, {"$ref": "#/$defs/load"}, {"$ref": "#/$defs/call"}],
        "$defs": {
            "header": {"type": "object", "additionalProperties": False,
                       "required": ["kind", "schema", "chaosvol", "t", "seed", "profile", "name", "socket", "backend"],
                       "description": "opens the records of one run",
                       "properties": {"kind": {"const": "header"}, **common, "name": nullable_string, "socket": nullable_string,
                                      "backend": nullable_string}},
            "load": {"type": "object", "additionalProperties": False, "required": ["kind", "schema", "chaosvol", "t", "seed", "profile"],
                     "description": "another profile took over (chaosvol ctl load, SIGHUP); rule counters start again",
                     "properties": {"kind": {"const": "load"}, **common}},
            "call": {"type": "object", "additionalProperties": False, "required": sorted(call_properties),
                     "properties": call_properties},
        },
    }


def _required(fault: type[Any]) -> list[str]:
    return [spec.name for spec in options.option_specs(fault) if spec.required]


def _options(fault: type[Any]) -> dict[str, Any]:
    properties = {spec.name: _type(spec.kind) for spec in options.option_specs(fault)}
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties,
                              "description": (fault.__doc__ or "").strip().split("\n")[0]}
    required = _required(fault)
    if required:
        schema["required"] = required
    else:
        schema = {"oneOf": [{"type": "null"}, schema]}  # `word:` with nothing after it
    return schema


def _type(kind: options.OptionKind, *, in_log: bool = False) -> dict[str, Any]:
    """The schema of an option of `kind`: as a profile writes it (YAML: a duration spelled, a
    string that may read as a number), or `in_log`, as the event log records it (JSON: durations
    in seconds, strings as strings)."""
    match kind:
        case options.OneOf(kinds=kinds):
            return {"anyOf": [_type(choice, in_log=in_log) for choice in kinds]}
        case options.Simple.DURATION:
            return {"type": "number", "minimum": 0, "description": "seconds"} if in_log else {"$ref": "#/$defs/duration"}
        case options.Choice(values=values):
            return {"enum": list(values)}
        case options.Simple.NAMES:
            return {"type": "array", "items": {"type": "string" if in_log else ["string", "number"]}}
        case options.Simple.TEXT:
            return {"type": "string"} if in_log else {"type": ["string", "number", "boolean"]}
        case options.Simple.FLAG:
            return {"type": "boolean"}
        case options.Simple.INTEGER:
            return {"type": "integer"}
        case options.Simple.NUMBER:
            return {"type": "number"}
        case options.Simple.NULL:
            return {"type": "null"}
        case _:
            assert_never(kind)
