"""Profiles: YAML (version 1 of shared/contract.md) in, a frozen Profile out, or a ProfileError
that lists every problem with `file:line:column`, the field, what was found and what is allowed.

The loader works on YAML's node tree, not on plain Python values, so that every value keeps its
position. Unknown keys and duplicate keys are errors: a typo must not silently switch a fault off.
A fault's options are read into its dataclass fields by their types (see chaosvol.faults).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, assert_never

import yaml

from chaosvol.core.durations import DURATION_FORMS, parse_duration
from chaosvol.core.effects import Plan
from chaosvol.core.errors import Position, ProfileError, ProfileProblem
from chaosvol.core.options import Choice, OneOf, OptionKind, Simple, option_specs
from chaosvol.core.protocol import OPERATION_BY_NAME, Operation, PluginCall
from chaosvol.faults import FAULTS, Fault, FaultContext

VERSION: Final = 1
# A rule without `op` never matches Activate: an error there fails every command that needs the
# driver until one activates it again (dockerd does not cache a failed activation and re-activates
# on the next command; a hang blocks them for as long as it lasts), so it must be asked for by name.
DEFAULT_OPERATIONS: Final = frozenset(Operation) - {Operation.ACTIVATE}
SHIPPED_PROFILE_DIRS: Final = (
    Path(__file__).parents[1] / "profiles",  # in the wheel
    Path(__file__).parents[2] / "profiles",  # in a source checkout
)
_TOP_KEYS: Final = ("version", "seed", "description", "rules")
_RULE_KEYS: Final = ("name", "description", "match", "after", "from_activation", "times", "probability", "action", "actions")
_MATCH_KEYS: Final = ("op", "volume", "opts", "retry")
# A profile is a page of YAML; these bound what a broken or hostile file can make us do.
MAX_PROFILE_BYTES: Final = 1024 * 1024
MAX_NESTING: Final = 16


@dataclass(frozen=True, slots=True)
class Match:
    """Which calls a rule looks at.

    Attributes:
        operations: the operations it matches.
        volume: a shell glob on the volume name; calls that name no volume (List, Capabilities,
            Activate, empty-body retries the proxy could not link to the call they retry) do not
            match it, except List for faults that act on List's entries (hide).
        opts: Create options that must be present with these values.
        retry: True: only dockerd's empty-body retries (matched by `volume` through the volume of
            the call they retry, when the proxy knows it); False: only first attempts; None: both.
    """

    operations: frozenset[Operation]
    volume: str | None = None
    opts: Mapping[str, str] | None = None
    retry: bool | None = None
    _glob: Callable[[str], object] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.volume is not None:  # compiled once; fnmatch's patterns match in linear time
            object.__setattr__(self, "_glob", re.compile(fnmatch.translate(self.volume)).match)

    def matches(self, call: PluginCall, sees_list_entries: bool = False) -> bool:
        if call.operation not in self.operations:
            return False
        if self.retry is not None and call.retry is not self.retry:
            return False
        if self._glob is not None:
            if call.volume is None:
                if not (sees_list_entries and call.operation is Operation.LIST):
                    return False
            elif self._glob(call.volume) is None:
                return False
        if self.opts is not None:
            if call.opts is None:
                return False
            return all(call.opts.get(key) == value for key, value in self.opts.items())
        return True


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: which calls, how often, and what happens to them."""

    name: str
    match: Match
    actions: tuple[Fault, ...]
    after: int = 0
    times: int | None = None
    probability: float = 1.0
    position: Position | None = None
    # The rule looks at no call until the proxy has seen this many Activate calls (0: from the
    # start). dockerd activates a plugin once per daemon lifetime, so 2 means "once the daemon has
    # activated it again", as it does when it restarts (a failed Activate counts too).
    from_activation: int = 0

    @property
    def action_label(self) -> str:
        """What the event log's `action` says: `drop`, or `delay+error` for several."""
        return "+".join(action.word for action in self.actions)

    @property
    def draws(self) -> bool:
        """Whether the rule draws random numbers: a probability, or an action that draws."""
        return self.probability < 1 or any(action.draws() for action in self.actions)

    @property
    def sees_list_entries(self) -> bool:
        return any(action.sees_list_entries for action in self.actions)

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        return self.decide(call, context)[1]

    def decide(self, call: PluginCall, context: FaultContext) -> tuple[tuple[Fault, ...], Plan]:
        """The actions resolved for this call (every random choice made) and the plan made of
        them: the plan draws nothing more, so the resolved actions say all it does."""
        if len(self.actions) == 1:
            action = self.actions[0].resolve(call, context)
            plan: Plan = action.plan(call, context)
            # The same tuple for the same resolved action: the event log caches its text by identity.
            return (self.actions if action is self.actions[0] else _single(action)), plan
        resolved = tuple(action.resolve(call, context) for action in self.actions)
        return resolved, Plan.combine([action.plan(call, context) for action in resolved])


_SINGLES: dict[int, tuple[Any, tuple[Any]]] = {}


def _single(action: Any) -> tuple[Any]:
    """`(action,)`, one tuple per action object while it lives (resolved actions that do not
    draw anything, such as an error's written-out message, are made once and kept)."""
    entry = _SINGLES.get(id(action))
    if entry is None or entry[0] is not action:
        if len(_SINGLES) >= 4096:
            _SINGLES.clear()
        entry = _SINGLES[id(action)] = (action, (action,))
    return entry[1]


@dataclass(frozen=True, slots=True)
class Profile:
    rules: tuple[Rule, ...] = ()
    seed: int | None = None
    source: str = "<none>"
    description: str | None = None
    digest: str | None = None  # sha256 of the profile's text, for the event log's header


PASSTHROUGH: Final = Profile(source="<pass-through>")


def resolve_profile(spec: str) -> Path:
    """The file a `--profile` value names: a path, or a bare name of a shipped profile.

    Raises:
        ProfileError: nothing by that name; says where it looked and what is shipped.
    """
    path = Path(spec)
    if path.exists() or "/" in spec or spec.endswith((".yaml", ".yml")):
        return path
    for directory in SHIPPED_PROFILE_DIRS:
        candidate = directory / f"{spec}.yaml"
        if candidate.is_file():
            return candidate
    shipped = sorted({p.stem for d in SHIPPED_PROFILE_DIRS if d.is_dir() for p in d.glob("*.yaml")})
    raise ProfileError(
        [
            ProfileProblem(
                Position(spec, 0, 0),
                "",
                f"no such file, and no shipped profile named {spec!r}; shipped: {', '.join(shipped) or 'none'}",
            )
        ]
    )


def load_profile(spec: str | Path) -> Profile:
    """Read and validate a profile file (or shipped name).

    Raises:
        ProfileError: the file cannot be read or is not a valid profile.
    """
    path = resolve_profile(str(spec))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProfileError([ProfileProblem(Position(str(path), 0, 0), "", f"cannot read the profile: {reason}")]) from exc
    return parse_profile(text, str(path))


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Validate profile text. Every problem is collected before raising.

    Raises:
        ProfileError: one problem per line, each `file:line:column: where: message`.
    """
    loader = _Loader(source)
    if len(text) > MAX_PROFILE_BYTES:
        raise ProfileError([ProfileProblem(Position(source, 1, 1), "", f"the profile is over {MAX_PROFILE_BYTES} bytes; profiles are small")])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = loader.position_of_mark(mark)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ProfileError([ProfileProblem(position, "", f"not valid YAML: {message}")]) from exc
    except yaml.YAMLError as exc:
        raise ProfileError([ProfileProblem(Position(source, 1, 1), "", f"not valid YAML: {exc}")]) from exc
    deep = _too_deep(node)
    if deep is not None:
        raise ProfileError([ProfileProblem(loader.position(deep), "", f"nested more than {MAX_NESTING} levels deep; a profile never needs that")])
    profile = loader.profile(node)
    if loader.problems:
        raise ProfileError(sorted(loader.problems, key=lambda p: (p.position.line, p.position.column)))
    assert profile is not None
    return dataclasses.replace(profile, digest=hashlib.sha256(text.encode("utf-8")).hexdigest())


class _Invalid(Exception):
    """Internal: this value could not be read; the problem is already recorded."""


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ProfileProblem] = []

    def position_of_mark(self, mark: Any) -> Position:
        if mark is None:
            return Position(self.source, 1, 1)
        return Position(self.source, mark.line + 1, mark.column + 1)

    def position(self, node: yaml.Node) -> Position:
        return self.position_of_mark(node.start_mark)

    def fail(self, node: yaml.Node, where: str, message: str) -> _Invalid:
        self.problems.append(ProfileProblem(self.position(node), where, message))
        return _Invalid()

    # -- shapes ------------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        """A mapping's values by key, refusing duplicates and keys not in `allowed`."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, f"expected a mapping with keys {', '.join(allowed)}; found {_found(node)}")
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                self.fail(key_node, where, f"keys must be plain words; found {_found(key_node)}")
                continue
            if key in result:
                self.fail(key_node, _join(where, key), "duplicate key (the first one would be silently ignored)")
                continue
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.fail(key_node, _join(where, key), f"unknown key {key!r}{suggestion}; allowed: {', '.join(allowed)}")
                continue
            result[key] = value_node
        return result

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, where, f"expected a single value; found {_found(node)}")
        return _construct(node)

    def integer(self, node: yaml.Node, where: str, minimum: int) -> int:
        value = self.scalar(node, where)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(node, where, f"expected a whole number >= {minimum}; found {_found(node)}")
        return value

    def text(self, node: yaml.Node, where: str) -> str:
        """A string; numbers and words are taken as written (`size: 1G`, `size: 5` both work)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, where, f"expected text; found {_found(node)}")
        return str(node.value)

    # -- the profile -------------------------------------------------------------------------

    def profile(self, node: yaml.Node | None) -> Profile | None:
        if node is None:
            self.problems.append(
                ProfileProblem(Position(self.source, 1, 1), "", "the profile is empty; it starts with `version: 1`")
            )
            return None
        try:
            top = self.mapping(node, "", _TOP_KEYS)
        except _Invalid:
            return None
        if "version" not in top:
            self.fail(node, "version", "missing; write `version: 1` at the top")
        else:
            version = _construct(top["version"]) if isinstance(top["version"], yaml.ScalarNode) else None
            if version != VERSION or isinstance(version, bool):
                self.fail(top["version"], "version", f"found {_found(top['version'])}; this chaosvol reads version {VERSION}")
        seed = None
        if "seed" in top:
            try:
                seed = self.integer(top["seed"], "seed", 0)
            except _Invalid:
                pass
        description = None
        if "description" in top:
            try:
                description = self.text(top["description"], "description")
            except _Invalid:
                pass
        rules: list[Rule] = []
        if "rules" in top:
            rules_node = top["rules"]
            if isinstance(rules_node, yaml.ScalarNode) and rules_node.tag == "tag:yaml.org,2002:null":
                pass  # `rules:` with nothing after it: no rules
            elif not isinstance(rules_node, yaml.SequenceNode):
                self.fail(rules_node, "rules", f"expected a list of rules; found {_found(rules_node)}")
            else:
                names: dict[str, yaml.Node] = {}
                for index, rule_node in enumerate(rules_node.value):
                    try:
                        rule = self.rule(rule_node, f"rules[{index}]", index)
                    except _Invalid:
                        continue
                    if rule.name in names:
                        self.fail(rule_node, f"rules[{index}].name", f"another rule is already named {rule.name!r}; names must be unique")
                        continue
                    names[rule.name] = rule_node
                    rules.append(rule)
        return Profile(tuple(rules), seed, self.source, description)

    def rule(self, node: yaml.Node, where: str, index: int) -> Rule:
        keys = self.mapping(node, where, _RULE_KEYS)
        problems_before = len(self.problems)
        name = f"rule-{index}"
        if "name" in keys:
            try:
                name = self.text(keys["name"], f"{where}.name")
            except _Invalid:
                pass
        after = self._optional_int(keys, "after", where, 0) or 0
        from_activation = self._optional_int(keys, "from_activation", where, 1) or 0
        times = self._optional_int(keys, "times", where, 0)
        probability = 1.0
        if "probability" in keys:
            value = _construct(keys["probability"]) if isinstance(keys["probability"], yaml.ScalarNode) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                self.fail(keys["probability"], f"{where}.probability", f"expected a number from 0 to 1; found {_found(keys['probability'])}")
            else:
                probability = float(value)
        match_keys: dict[str, yaml.Node] = {}
        if "match" in keys:
            try:
                match_keys = self.mapping(keys["match"], f"{where}.match", _MATCH_KEYS)
            except _Invalid:
                pass
        operations = self._operations(match_keys, where)
        actions = self._actions(node, keys, where)
        volume = None
        if "volume" in match_keys:
            try:
                volume = self.text(match_keys["volume"], f"{where}.match.volume")
            except _Invalid:
                pass
        opts = self._opts(match_keys, where)
        retry = None
        if "retry" in match_keys:
            value = _construct(match_keys["retry"]) if isinstance(match_keys["retry"], yaml.ScalarNode) else None
            if not isinstance(value, bool):
                self.fail(match_keys["retry"], f"{where}.match.retry", f"expected true (only dockerd's empty-body retries) or false "
                          f"(only first attempts); found {_found(match_keys['retry'])}")
            else:
                retry = value
        if len(self.problems) != problems_before or actions is None:
            raise _Invalid()
        operations = self._check_operations(node, keys, match_keys, where, operations, actions)
        if opts is not None and operations is not None and Operation.CREATE not in operations:
            self.fail(match_keys["opts"], f"{where}.match.opts", "opts are sent with Create only; add Create to op")
        if operations is None or len(self.problems) != problems_before:
            raise _Invalid()
        if retry and operations is not None and not any(operation.carries_body for operation in operations):
            self.fail(match_keys["retry"], f"{where}.match.retry", "Activate and List have no retry chaosvol can tell apart "
                      "(their body is empty anyway); add an operation that carries a body")
            raise _Invalid()
        rule = Rule(name, Match(operations, volume, opts, retry), actions, after, times, probability, self.position(node), from_activation)
        self._check_plans(rule, keys, where)
        return rule

    def _optional_int(self, keys: dict[str, yaml.Node], key: str, where: str, minimum: int) -> int | None:
        if key not in keys:
            return None
        try:
            return self.integer(keys[key], f"{where}.{key}", minimum)
        except _Invalid:
            return None

    def _operations(self, match_keys: dict[str, yaml.Node], where: str) -> frozenset[Operation] | None:
        if "op" not in match_keys:
            return None
        node = match_keys["op"]
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        operations: set[Operation] = set()
        allowed = ", ".join(OPERATION_BY_NAME)
        for item in items:
            word = item.value if isinstance(item, yaml.ScalarNode) else None
            operation = OPERATION_BY_NAME.get(word) if isinstance(word, str) else None
            if operation is None:
                hint = difflib.get_close_matches(str(word), OPERATION_BY_NAME, n=1, cutoff=0.5)
                suggestion = f" (did you mean {hint[0]}?)" if hint else ""
                self.fail(item, f"{where}.match.op", f"unknown operation {_found(item)}{suggestion}; allowed: {allowed}")
                continue
            operations.add(operation)
        if not items:
            self.fail(node, f"{where}.match.op", f"empty list; name at least one of {allowed}")
        return frozenset(operations)

    def _opts(self, match_keys: dict[str, yaml.Node], where: str) -> dict[str, str] | None:
        if "opts" not in match_keys:
            return None
        node = match_keys["opts"]
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{where}.match.opts", f"expected a mapping of option names to values; found {_found(node)}")
            return None
        opts: dict[str, str] = {}
        for key_node, value_node in node.value:
            try:
                opts[self.text(key_node, f"{where}.match.opts")] = self.text(value_node, f"{where}.match.opts.{key_node.value}")
            except _Invalid:
                pass
        return opts

    def _actions(self, node: yaml.Node, keys: dict[str, yaml.Node], where: str) -> tuple[Fault, ...] | None:
        if ("action" in keys) == ("actions" in keys):
            self.fail(node, where, f"a rule needs exactly one of action or actions; allowed actions: {_allowed_actions()}")
            return None
        if "action" in keys:
            try:
                return (self.action(keys["action"], f"{where}.action"),)
            except _Invalid:
                return None
        sequence = keys["actions"]
        if not isinstance(sequence, yaml.SequenceNode) or not sequence.value:
            self.fail(sequence, f"{where}.actions", f"expected a non-empty list of actions; found {_found(sequence)}")
            return None
        actions = []
        for index, item in enumerate(sequence.value):
            try:
                actions.append(self.action(item, f"{where}.actions[{index}]"))
            except _Invalid:
                pass
        return tuple(actions) if len(actions) == len(sequence.value) else None

    def action(self, node: yaml.Node, where: str) -> Any:
        """One action: a bare word (`drop`) or a one-key mapping (`delay: {duration: 2s}`)."""
        options: yaml.Node | None = None
        if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and node.tag == "tag:yaml.org,2002:str":
            word = node.value
        elif isinstance(node, yaml.MappingNode) and len(node.value) == 1 and isinstance(node.value[0][0], yaml.ScalarNode):
            word = node.value[0][0].value
            options = node.value[0][1]
        else:
            raise self.fail(node, where, f"expected an action word or `word: {{options}}`; found {_found(node)}; allowed: {_allowed_actions()}")
        fault_type = FAULTS.get(word)
        if fault_type is None:
            hint = difflib.get_close_matches(word, FAULTS, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise self.fail(node, where, f"unknown action {word!r}{suggestion}; allowed: {_allowed_actions()}")
        where = _join(where, word)
        values: dict[str, Any] = {}
        specs = option_specs(fault_type)
        given: dict[str, yaml.Node] = {}
        if options is not None and not (isinstance(options, yaml.ScalarNode) and options.tag == "tag:yaml.org,2002:null"):
            given = self.mapping(options, where, tuple(spec.name for spec in specs))
        missing = False
        for spec in specs:
            if spec.name in given:
                try:
                    values[spec.name] = self.typed(given[spec.name], _join(where, spec.name), spec.kind)
                except _Invalid:
                    pass
            elif spec.required:
                self.fail(options if options is not None else node, where, f"missing {spec.name!r}; for example `{fault_type.example}`")
                missing = True
        if missing or len(values) != len(given):
            raise _Invalid()
        try:
            return fault_type(**values)
        except (TypeError, ValueError) as exc:
            raise self.fail(node, where, str(exc)) from exc

    def typed(self, node: yaml.Node, where: str, kind: OptionKind) -> Any:
        """Read `node` as a value of `kind` (chaosvol.core.options)."""
        match kind:
            case OneOf(kinds=choices):
                is_null = isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
                if is_null and Simple.NULL in choices:
                    return None
                problems = len(self.problems)
                messages = []
                for choice in choices:
                    if choice is Simple.NULL:
                        continue
                    try:
                        value = self.typed(node, where, choice)
                    except _Invalid:
                        messages.append(self.problems.pop().message)
                        continue
                    del self.problems[problems:]
                    return value
                alternatives = [_strip_found(m).removeprefix("expected ") for m in messages]
                raise self.fail(node, where, "expected " + " or ".join(alternatives) + f"; found {_found(node)}")
            case Simple.DURATION:
                value = _construct(node) if isinstance(node, yaml.ScalarNode) else None
                if value == 0 and not isinstance(value, bool):
                    return 0.0  # a bare 0 is unambiguous
                if isinstance(value, str):
                    try:
                        return parse_duration(value)
                    except ValueError:
                        pass
                raise self.fail(node, where, f"expected {DURATION_FORMS}; found {_found(node)}")
            case Choice(values=allowed):
                value = _construct(node) if isinstance(node, yaml.ScalarNode) else None
                if value not in allowed or isinstance(value, bool):
                    raise self.fail(node, where, f"expected one of {', '.join(map(str, allowed))}; found {_found(node)}")
                return value
            case Simple.NAMES:
                if not isinstance(node, yaml.SequenceNode):
                    raise self.fail(node, where, f"expected a list of names; found {_found(node)}")
                return tuple(self.text(item, where) for item in node.value)
            case Simple.TEXT:
                return self.text(node, where)
            case Simple.FLAG:
                value = _construct(node) if isinstance(node, yaml.ScalarNode) else None
                if not isinstance(value, bool):
                    raise self.fail(node, where, f"expected true or false; found {_found(node)}")
                return value
            case Simple.INTEGER:
                return self.integer(node, where, -(2**63))
            case Simple.NUMBER:
                value = _construct(node) if isinstance(node, yaml.ScalarNode) else None
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise self.fail(node, where, f"expected a number; found {_found(node)}")
                return float(value)
            case Simple.NULL:
                if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                    return None
                raise self.fail(node, where, f"expected null; found {_found(node)}")
            case _:
                assert_never(kind)

    def _check_operations(
        self,
        node: yaml.Node,
        keys: dict[str, yaml.Node],
        match_keys: dict[str, yaml.Node],
        where: str,
        operations: frozenset[Operation] | None,
        actions: tuple[Fault, ...],
    ) -> frozenset[Operation] | None:
        supported = DEFAULT_OPERATIONS | ({Operation.ACTIVATE} if operations else set())
        for action in actions:
            if action.operations is not None:
                supported = supported & action.operations
        action_node = keys.get("action", keys.get("actions", node))
        if operations is None:
            if not supported:
                self.fail(action_node, where, "these actions have no operation in common")
                return None
            operations = frozenset(supported)
        else:
            unsupported = operations - supported
            if unsupported:
                for action in actions:
                    if action.operations is not None and not operations <= action.operations:
                        allowed = ", ".join(op.value for op in Operation if op in action.operations)
                        bad = ", ".join(op.value for op in Operation if op in unsupported)
                        self.fail(match_keys["op"], f"{where}.match.op", f"{action.word} works on {allowed}, not {bad}")
                return None
        for action in actions:
            problem = action.operations_problem(operations)
            if problem:
                self.fail(match_keys.get("op", action_node), f"{where}.match.op", problem)
                return None
        return operations

    def _check_plans(self, rule: Rule, keys: dict[str, yaml.Node], where: str) -> None:
        """Plan every operation once, so an impossible order of actions is refused now."""
        context = FaultContext(random.Random(0), 0.0, 1, rule.match.volume)
        for operation in rule.match.operations:
            call = PluginCall.build(operation, "v", mount_id="0" * 64 if operation in (Operation.MOUNT, Operation.UNMOUNT) else None)
            try:
                rule.plan(call, context)
            except ValueError as exc:
                node = keys.get("actions", keys.get("action"))
                assert node is not None
                self.fail(node, f"{where}.actions", f"these actions cannot run in this order: {exc}")
                return


def _too_deep(root: yaml.Node | None) -> yaml.Node | None:
    """The first node nested deeper than MAX_NESTING, if any (aliases are walked once)."""
    seen: set[int] = set()
    stack = [(root, 0)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_NESTING:
            return node
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
    return None


def _construct(node: yaml.Node) -> Any:
    """The plain value of a scalar node, as yaml.safe_load would give it (tags it refuses: text)."""
    try:
        return _SCALARS.construct_object(node, deep=True)
    except yaml.YAMLError:
        return str(node.value)
    finally:
        _SCALARS.constructed_objects.clear()


_SCALARS: Final = yaml.SafeLoader("")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _found(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return "nothing (null)"
        return repr(node.value) if node.tag == "tag:yaml.org,2002:str" else str(node.value)
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a mapping"


def _strip_found(message: str) -> str:
    return message.split("; found ")[0]


def _allowed_actions() -> str:
    return ", ".join(sorted(FAULTS))


def advice(profile: Profile) -> list[str]:
    """Warnings about a valid profile, each `file:line:column: rules[i] (name): text`: what its
    faults mean for clients that read them differently (Podman's 5 s timeout, its reading of
    200 answers)."""
    notes: list[str] = []
    for index, rule in enumerate(profile.rules):
        where = f"{rule.position}: " if rule.position is not None else ""
        for action in rule.actions:
            for text in action.advice():
                notes.append(f"{where}rules[{index}] ({rule.name}): warning: {text}")
    return notes
