"""The profile loader: what it accepts, and that every problem names file:line:column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import SHIPPED_PROFILE_DIRS, load_profile, parse_profile
from chaosvol.core.protocol import Operation
from chaosvol.faults.delay import Delay
from chaosvol.faults.hang import Hang
from tests.support.builders import profile, profile_error, rule


def problems(text: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "p.yaml")
    return str(caught.value).splitlines()


def test_a_full_rule_is_read_into_typed_values() -> None:
    loaded = parse_profile(
        """\
version: 1
seed: 7
rules:
  - name: slow
    match: {op: [Mount, Create], volume: "chaos-*", opts: {size: 1G}}
    after: 1
    times: 2
    probability: 0.5
    action: {delay: {duration: 1m30s, jitter: 200ms, when: after}}
""",
        "p.yaml",
    )
    (r,) = loaded.rules
    assert loaded.seed == 7
    assert (r.name, r.after, r.times, r.probability) == ("slow", 1, 2, 0.5)
    assert r.match.operations == {Operation.MOUNT, Operation.CREATE}
    assert (r.match.volume, dict(r.match.opts or {})) == ("chaos-*", {"size": "1G"})
    assert r.actions == (Delay(90.0, 0.2, "after"),)
    assert r.position is not None and (r.position.line, r.position.column) == (4, 5)


def test_hang_forward_takes_a_word_or_a_duration() -> None:
    assert profile(rule({"hang": {"forward": "130s"}}, op="Create")).rules[0].actions == (Hang(130.0),)
    assert profile(rule({"hang": {"forward": "before"}}, op="Create")).rules[0].actions == (Hang("before"),)
    assert profile(rule("hang", op="Create")).rules[0].actions == (Hang("never"),)


def test_unknown_keys_are_errors_with_a_suggestion() -> None:
    lines = problems("version: 1\nrules:\n  - match: {op: Remove}\n    action: drop\n    tims: 1\n")
    assert lines == [("p.yaml:5:5: rules[0].tims: unknown key 'tims' (did you mean 'times'?); allowed: "
                      "name, description, match, after, from_activation, times, probability, action, actions")]


def test_a_bad_duration_points_at_the_value() -> None:
    lines = problems("version: 1\nrules:\n  - action: {delay: {duration: 2}}\n")
    assert lines[0].startswith("p.yaml:3:32: rules[0].action.delay.duration: expected a duration such as 250ms")
    assert lines[0].endswith("found 2")


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    lines = problems(
        "version: 1\nrules:\n  - match: {op: Remov}\n    action: drop\n  - action: dorp\n"
    )
    assert [line.split(": ")[0] for line in lines] == ["p.yaml:3:17", "p.yaml:5:13"]
    assert "did you mean Remove?" in lines[0] and "did you mean 'drop'?" in lines[1]


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("rules: []\n", "version", "missing; write `version: 1`"),
        ("version: 2\n", "version", "reads version 1"),
        ("version: 1\nrules: {}\n", "rules", "expected a list of rules"),
        ("version: 1\nseed: -1\n", "seed", "whole number >= 0"),
        ("version: 1\nrules:\n  - action: drop\n    action: pass\n", "rules[0].action", "duplicate key"),
        ("version: 1\nrules:\n  - match: {op: Get}\n    action: drop\n", "rules[0].match.op", "drop works on Create, Remove, Unmount, not Get"),
        ("version: 1\nrules:\n  - action: {crash: {restart: soon}}\n", "rules[0].action.crash.restart", "expected a duration"),
        ("version: 1\nrules:\n  - action: delay\n", "rules[0].action.delay", "missing 'duration'; for example `delay:"),
        ("version: 1\nrules:\n  - action: {error: {status: 99}}\n", "rules[0].action.error", "HTTP status"),
        ("version: 1\nrules:\n  - action: {error: {when: later}}\n", "rules[0].action.error.when", "one of before, after"),
        ("version: 1\nrules:\n  - action: {corrupt: {}}\n", "rules[0].action.corrupt", "exactly one of body"),
        ("version: 1\nrules:\n  - action: {corrupt: {mountpoint: ''}}\n", "rules[0].match.op", "Mount or Path only"),
        ("version: 1\nrules:\n  - actions: [reset, {delay: {duration: 1s}}]\n", "rules[0].actions", "must come last"),
        ("version: 1\nrules:\n  - {name: a, action: drop}\n  - {name: a, action: drop}\n", "rules[1].name", "unique"),
        ("version: 1\nrules:\n  - action: drop\n    probability: 2\n", "rules[0].probability", "from 0 to 1"),
        ("version: 1\nrules:\n  - {}\n", "rules[0]", "exactly one of action or actions"),
        ("version: 1\nrules:\n  - match: {op: Get}\n    action: {ghost: {names: []}}\n", "rules[0].action.ghost", "at least one name"),
        ("version: 1\nrules:\n  - match: {op: Get, opts: {a: b}}\n    action: error\n", "rules[0].match.opts", "Create only"),
        ("version: 1\nrules:\n  - action: drop\n    from_activation: 0\n", "rules[0].from_activation", "1"),
        ("version: 1\nrules:\n  - action: drop\n    from_activation: restart\n", "rules[0].from_activation", "whole number >= 1"),
    ],
)
def test_each_kind_of_mistake_is_named_with_its_field(text: str, where: str, says: str) -> None:
    line = problems(text)[0]
    assert f": {where}: " in line and says in line, line


def test_yaml_syntax_errors_have_a_position() -> None:
    line = problems("version: 1\nrules: [\n")[0]
    assert line.startswith("p.yaml:3:1: not valid YAML")


def test_an_empty_file_says_how_to_start() -> None:
    assert "starts with `version: 1`" in problems("")[0]


def test_shipped_profiles_load_by_bare_name_and_all_are_valid() -> None:
    shipped = sorted(p for d in SHIPPED_PROFILE_DIRS if d.is_dir() for p in d.glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"passthrough", "drop-removes", "flaky", "slow-mounts"}
    for path in shipped:
        assert load_profile(path.stem).source == str(path)
        assert path.read_text().startswith("# "), f"{path.name} must open with its comment block"


def test_an_unknown_bare_name_lists_what_is_shipped() -> None:
    with pytest.raises(ProfileError, match="no shipped profile named 'nope'; shipped: .*drop-removes"):
        load_profile("nope")


def test_an_unreadable_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read the profile"):
        load_profile(tmp_path / "missing.yaml")


def test_profile_error_exposes_the_first_field() -> None:
    assert profile_error(rule("drop", op="Get")).where == "rules[0].match.op"


def test_oversize_and_deeply_nested_profiles_are_refused_before_they_are_read() -> None:
    assert "over 1048576 bytes" in problems("version: 1\n" + "#" * (1024 * 1024))[0]
    nested = "version: 1\nrules:\n  - match: " + "[" * 40 + "]" * 40 + "\n"
    assert "nested more than 16 levels" in problems(nested)[0]


def test_aliases_cannot_blow_up_the_loader() -> None:
    bomb = "version: 1\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)
    )
    assert "unknown key" in problems(bomb)[0]  # refused quickly, never expanded


def test_pathological_globs_take_linear_time() -> None:
    import time

    from chaosvol.core.protocol import Operation, PluginCall

    loaded = profile(rule("drop", op="Remove", volume="*a*a*a*a*a*a*a*a*a*a*b"))
    call = PluginCall.build(Operation.REMOVE, "a" * 250)
    started = time.perf_counter()
    assert not loaded.rules[0].match.matches(call)
    assert time.perf_counter() - started < 0.5


def test_check_advice_names_what_podman_reads_differently_with_the_rule_s_position() -> None:
    from chaosvol.core.profile import advice

    loaded = parse_profile(
        "version: 1\nrules:\n"
        "  - {name: slow, match: {op: Mount}, action: {delay: {duration: 4s, jitter: 1s}}}\n"
        "  - {name: quick, match: {op: Mount}, action: {delay: {duration: 4s}}}\n"
        "  - {name: silent, match: {op: Create}, action: {error: {status: 200}}}\n"
        "  - {name: loud, match: {op: Create}, action: error}\n"
        "  - {name: parked, match: {op: List}, action: hold}\n"
        "  - {name: brief, match: {op: List}, action: {hold: {timeout: 2s}}}\n",
        "p.yaml",
    )
    notes = advice(loaded)
    assert [note.split(": warning: ")[0] for note in notes] == [
        "p.yaml:3:5: rules[0] (slow)", "p.yaml:5:5: rules[2] (silent)", "p.yaml:7:5: rules[4] (parked)",
    ]
    assert "past Podman's 5s plugin timeout" in notes[0] and "Podman ignores Err in a 200 answer" in notes[1]


def test_match_retry_selects_retries_or_first_attempts_and_is_refused_where_no_retry_can_be_told() -> None:
    from chaosvol.core.protocol import Operation, PluginCall

    loaded = profile(rule("drop", op="Remove", retry=True)).rules[0].match
    assert loaded.retry is True
    retry, first = PluginCall.parse(Operation.REMOVE, b""), PluginCall.build(Operation.REMOVE, "v1")
    assert loaded.matches(retry) and not loaded.matches(first)
    assert profile(rule("drop", op="Remove", retry=False)).rules[0].match.matches(first)
    linked = profile(rule("drop", op="Remove", volume="v*", retry=True)).rules[0].match
    assert linked.matches(retry.as_retry_of("v1", None)) and not linked.matches(retry)  # by the volume of the call it retries
    assert "expected true (only dockerd's empty-body retries) or false" in str(profile_error(rule("drop", op="Remove", retry="yes")))
    assert "Activate and List have no retry chaosvol can tell apart" in str(profile_error(rule("error", op="List", retry=True)))
