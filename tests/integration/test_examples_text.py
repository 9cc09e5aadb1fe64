"""Every example shows each command before its output: a reader of its output must be able to
tell which command printed what (a bare `ls` once made Podman's `volume ls` look as if it still
listed a volume it had forgotten). Read from the scripts; tests/e2e/test_examples.py runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.sh") if p.name != "lib.sh")

# What a line of a scenario may start with: a helper that prints the command first (run,
# run_may_fail, podman_, restart_dockerd), a heading or narration, or shell that prints nothing.
SHOWN = re.compile(
    r"""^(run|run_may_fail|podman_|say|audit|echo|printf|chaosvol_start|chaosvol_stop|restart_dockerd|serve|wait|sleep|set|
    for|do|done|if|then|else|fi|case|esac|[A-Z_]+=|[a-z0-9|-]+\)|;;|\}|\)|\(.*\)\s*&$|[A-Za-z_]+\(\)\s*\{)""",
    re.VERBOSE,
)


def scenario_lines(script: Path) -> list[tuple[int, str]]:
    """The lines after the set-up (example_start, or podman.sh's first `serve`)."""
    lines = script.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r'^(example_start |serve "\$SCENARIO")', line))
    return [(number + 1, line.strip()) for number, line in enumerate(lines) if number > start]


def bare_commands(script: Path) -> list[str]:
    found = []
    heredoc: str | None = None  # the delimiter of the here-document being read (its body is data)
    continued = False  # the line before ended in a backslash: this one is part of its command
    for number, line in scenario_lines(script):
        if heredoc is not None:
            heredoc = None if line == heredoc else heredoc
            continue
        shown_before, continued = continued, line.endswith("\\")
        opens = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if opens:
            heredoc = opens.group(1)
        if shown_before or not line or line.startswith("#") or SHOWN.match(line):
            continue
        if re.search(r">\s*/dev/null 2>&1|>\s*\"?\$WORK", line):  # prints nothing
            continue
        found.append(f"{script.name}:{number}: {line}")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_command_an_example_runs_is_shown_before_its_output(script: Path) -> None:
    assert bare_commands(script) == []


def test_a_here_document_and_a_continued_command_are_not_bare(tmp_path: Path) -> None:
    script = tmp_path / "x.sh"
    script.write_text('example_start x\ncat >"$WORK/w.sh" <<EOF\ndocker volume ls\nEOF\nrun docker volume \\\n    ls\nls /\n')
    assert bare_commands(script) == ["x.sh:7: ls /"]


def test_the_check_finds_a_bare_command(tmp_path: Path) -> None:
    script = tmp_path / "x.sh"
    script.write_text('example_start x\nrun "$DOCKER" volume ls\nls "$WORK/volumes/volumes"\n')
    assert bare_commands(script) == ['x.sh:3: ls "$WORK/volumes/volumes"']
