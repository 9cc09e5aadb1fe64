"""examples/test_with_chaosvol.py, the README's example of the pytest plugin, run as a user runs
it (a fresh pytest process) against the real dockerd: both of its tests must pass."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "test_with_chaosvol.py"


def test_the_readme_example_suite_passes_against_dockerd(scenario: Any, pytester: pytest.Pytester) -> None:
    name = scenario.hand_over()  # the example's proxy serves the session's plugin name meanwhile
    pytester.makepyfile(test_example=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--durations=0", f"--chaosvol-docker-host={scenario.dockerd.host}", f"--chaosvol-name={name}",
        "--chaosvol-require-dockerd", timeout=300,
    )
    result.assert_outcomes(passed=2)


def test_with_chaosvol_dockerd_26_the_fixture_starts_dockerd_26_and_the_example_passes(daemons: Any, pytester: pytest.Pytester) -> None:
    daemons.get("26")  # the chroot is there (or the reason it is not)
    pytester.makepyfile(test_example=EXAMPLE.read_text(), test_version="""
def test_the_daemon_is_26_and_a_restart_keeps_a_container_running(chaosvol_dockerd):
    assert chaosvol_dockerd.docker("version", "--format", "{{.Server.Version}}").stdout.startswith("26.")
    chaosvol_dockerd.docker("run", "-d", "--name", "lr", "bb:local", "sleep", "300")
    chaosvol_dockerd.restart()
    assert chaosvol_dockerd.docker("inspect", "-f", "{{.State.Status}}", "lr").stdout.strip() == "running"
""")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--chaosvol-dockerd=26", "--chaosvol-live-restore", f"--chaosvol-name=cv-pp26-{secrets.token_hex(3)}",
        "--chaosvol-require-dockerd", timeout=300,
    )
    result.assert_outcomes(passed=3)
