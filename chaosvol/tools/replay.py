"""replay: a recorded run's event log becomes a profile that makes the same decisions again.

Every call a rule fired on becomes one rule selected by operation, volume and its index among
the calls with that operation and volume: never by chance. For the same sequence of calls the
profile fires the same actions, with the same options, on the same calls, whatever the seed.

Why the order of the rules: a rule counts the calls that reach it, and a call one rule fires on
reaches no later rule. Rules for the same operation and volume are therefore written latest call
first, so that each sees every call before its own.

Where the actions come from: a log of schema 2 records each fired rule's actions as carried out
(a delay's drawn duration, an error's exact message), so the log alone is enough. A log of
schema 1 did not: with the original profile (`--profile`) the rule of the same name gives the
options (a jittered delay replays at its nominal duration); without it, actions that need
options cannot be reproduced. Every call that cannot be reproduced is named in `unreproducible`,
and the command exits 1.

dockerd's empty-body retries: one the proxy linked to the call it retries carries that call's
volume, and is selected with the other calls of that volume; one it could not link is selected
among the retries of its operation (`retry: true`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from chaosvol.core.events import CallEvent
from chaosvol.core.options import option_specs
from chaosvol.core.profile import Profile, Rule
from chaosvol.core.protocol import OPERATION_BY_NAME
from chaosvol.faults import FAULTS, options_of, profile_action


@dataclass(frozen=True, slots=True)
class Replay:
    text: str  # the profile, YAML
    rules: int
    unreproducible: list[str] = field(default_factory=list)  # each: which call, and why
    notes: list[str] = field(default_factory=list)  # what is reproduced only approximately


def replay(events: Iterable[CallEvent], original: Profile | None = None, source: str = "events") -> Replay:
    ordered = sorted(events, key=lambda e: (e.t, e.seq))
    seen: Counter[tuple[str, str | None]] = Counter()
    retries: Counter[str] = Counter()
    chosen: list[tuple[tuple[str, str | None], int, CallEvent]] = []
    unreproducible: list[str] = []
    for event in ordered:
        if event.op not in OPERATION_BY_NAME:
            continue
        key = (event.op, event.volume)
        seen[key] += 1
        retries[event.op] += event.retry
        if not event.rule or event.action == "pass":
            continue
        if key[1] is None and OPERATION_BY_NAME[event.op].names_volume:
            # A retry the proxy could not link to its call: selected among the retries of its
            # operation (`retry: true`), by a rule put before the others (see _order).
            chosen.append(((event.op, None), retries[event.op], event))
            continue
        chosen.append((key, seen[key], event))
    originals = {rule.name: rule for rule in original.rules} if original is not None else {}
    rules: list[dict[str, Any]] = []
    notes: list[str] = []
    for key, index, event in sorted(chosen, key=_order):
        actions, entries, why = _actions(event, originals.get(event.rule or ""))
        if actions is None:
            unreproducible.append(f"seq {event.seq}: {event.op} {event.volume or ''}".rstrip() + f": {why}")
            continue
        if why:
            notes.append(f"seq {event.seq}: {why}")
        match: dict[str, Any] = {"op": key[0]}
        volume = key[1] if key[1] is not None else entries
        if volume is not None:
            match["volume"] = _glob_escape(volume) if key[1] is not None else volume
        unlinked = key[1] is None and OPERATION_BY_NAME[key[0]].names_volume
        if unlinked:
            match["retry"] = True
        label = "retry" if unlinked else key[1] or "all"
        rule: dict[str, Any] = {"name": f"replay-{key[0]}-{label}-{index}", "match": match}
        if index > 1:
            rule["after"] = index - 1
        rule["times"] = 1
        rule.update({"action": actions[0]} if len(actions) == 1 else {"actions": actions})
        rules.append(rule)
    header = (
        f"# Replays the faults recorded in {source}: {len(rules)} rule(s), one per faulted call,\n"
        "# selected by operation, volume and call index (latest first for each; see chaosvol replay).\n"
    )
    text = header + yaml.safe_dump({"version": 1, "rules": rules}, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return Replay(text, len(rules), unreproducible, notes)


def _order(item: tuple[tuple[str, str | None], int, CallEvent]) -> tuple[int, str, str, int]:
    """Rules for unlinked retries first (they count every retry of their operation, and a call
    they take is one no volume rule could match), then by operation and volume, latest first."""
    (operation, volume), index, _ = item
    unlinked = volume is None and OPERATION_BY_NAME[operation].names_volume
    return (0 if unlinked else 1, operation, volume or "", -index)


def _actions(event: CallEvent, rule: Rule | None) -> tuple[list[Any] | None, str | None, str]:
    """The actions to write for `event`, the volume glob of the List entries they act on, and
    why they are missing (actions None) or only approximate (a note)."""
    if event.decision is not None:  # schema 2: the log says what was done
        unknown = [action.word for action in event.decision if action.word not in FAULTS]
        if unknown:
            return None, None, f"action {unknown[0]!r} is not one this chaosvol knows (a log of a newer chaosvol?)"
        written = [profile_action(action.word, action.options) for action in event.decision]
        sees_entries = any(FAULTS[action.word].sees_list_entries for action in event.decision)
        return written, event.decision_volume if sees_entries else None, ""
    if rule is not None:  # schema 1, with the original profile
        written = [profile_action(action.word, options_of(action.nominal())) for action in rule.actions]
        note = "a jittered delay replays at its nominal duration (a schema 1 log did not record the one drawn)"
        return written, rule.match.volume if rule.sees_list_entries else None, note if any(action.draws() for action in rule.actions) else ""
    words = (event.action or "").split("+")
    for word in words:
        fault = FAULTS.get(word)
        if fault is None or any(spec.required for spec in option_specs(fault)):
            return None, None, f"{event.action} needs options a schema 1 log does not keep; pass the run's profile with --profile"
    return list(words), None, ""


def _glob_escape(name: str) -> str:
    """A glob that matches exactly `name`."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name) if any(c in name for c in "*?[]") else name
