"""replay: a recorded run's event log becomes a profile that makes the same decisions again.

Every call a rule fired on becomes one rule selected by operation, volume and its index among
the calls with that operation and volume: never by chance. For the same sequence of calls the
profile fires the same actions on the same calls, whatever the seed.

Why the order of the rules: a rule counts the calls that reach it, and a call one rule fires on
reaches no later rule. Rules for the same operation and volume are therefore written latest call
first, so that each sees every call before its own.

What a log cannot say: an action's options (a delay's duration, an error's message). They are
taken from the original profile's rule of the same name when it is given (`--profile`), with
any jitter removed; otherwise options that have defaults are left at them and rules whose action
needs options are reported and skipped. Calls that name no volume on an operation that usually
does (dockerd's empty-body retries) cannot be selected alone and are reported too.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from chaosvol.durations import format_duration
from chaosvol.faults import FAULTS
from chaosvol.profile import Profile
from chaosvol.protocol import OPERATION_BY_NAME


@dataclass(frozen=True, slots=True)
class Replay:
    text: str  # the profile, YAML
    rules: int
    skipped: list[str]


def replay(records: Iterable[Mapping[str, Any]], original: Profile | None = None, source: str = "events") -> Replay:
    ordered = sorted(records, key=lambda r: (str(r.get("t", "")), r.get("seq", 0)))
    seen: Counter[tuple[str, str | None]] = Counter()
    chosen: list[tuple[tuple[str, str | None], int, Mapping[str, Any]]] = []
    skipped: list[str] = []
    for record in ordered:
        op, volume = record.get("op"), record.get("volume")
        if op not in OPERATION_BY_NAME:
            continue
        key = (str(op), volume if isinstance(volume, str) else None)
        seen[key] += 1
        if not record.get("rule") or record.get("action") == "pass":
            continue
        operation = OPERATION_BY_NAME[str(op)]
        if key[1] is None and operation.names_volume:
            skipped.append(f"seq {record.get('seq')}: {op} with no volume (an empty-body retry) cannot be selected alone")
            continue
        chosen.append((key, seen[key], record))
    originals = {rule.name: rule for rule in original.rules} if original is not None else {}
    rules: list[dict[str, Any]] = []
    for key, index, record in sorted(chosen, key=lambda item: (item[0][0], item[0][1] or "", -item[1])):
        actions = _actions(record, originals)
        if actions is None:
            skipped.append(f"seq {record.get('seq')}: {record.get('action')} needs options the log does not keep; pass --profile")
            continue
        match: dict[str, Any] = {"op": key[0]}
        if key[1] is not None:
            match["volume"] = _glob_escape(key[1])
        rule: dict[str, Any] = {"name": f"replay-{key[0]}-{key[1] or 'all'}-{index}", "match": match}
        if index > 1:
            rule["after"] = index - 1
        rule["times"] = 1
        rule.update(actions)
        rules.append(rule)
    header = (
        f"# Replays the faults recorded in {source}: {len(rules)} rule(s), one per faulted call,\n"
        "# selected by operation, volume and call index (latest first for each; see chaosvol replay).\n"
    )
    text = header + yaml.safe_dump({"version": 1, "rules": rules}, sort_keys=False, default_flow_style=None, width=110)
    return Replay(text, len(rules), skipped)


def _actions(record: Mapping[str, Any], originals: Mapping[str, Any]) -> dict[str, Any] | None:
    rule = originals.get(str(record.get("rule")))
    if rule is not None:
        written = [_write_action(action) for action in rule.actions]
        return {"action": written[0]} if len(written) == 1 else {"actions": written}
    words = str(record.get("action") or "").split("+")
    written_words: list[Any] = []
    for word in words:
        fault = FAULTS.get(word)
        if fault is None or any(f.default is dataclasses.MISSING for f in dataclasses.fields(fault)):
            return None
        written_words.append(word)
    return {"action": written_words[0]} if len(written_words) == 1 else {"actions": written_words}


def _write_action(action: Any) -> Any:
    options: dict[str, Any] = {}
    for field in dataclasses.fields(action):
        value = getattr(action, field.name)
        if field.name == "jitter":
            continue  # the delay actually drawn is not in the log: replay the nominal one
        if value == field.default:
            continue
        options[field.name] = _write_value(field.type, value)
    return {action.word: options} if options else action.word


def _write_value(hint: Any, value: Any) -> Any:
    if isinstance(value, float) and "Seconds" in str(hint):
        return format_duration(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _glob_escape(name: str) -> str:
    """A glob that matches exactly `name`."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name) if any(c in name for c in "*?[]") else name

