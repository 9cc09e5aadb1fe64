"""The example scripts run to the end, as a user runs them (`sudo examples/NAME.sh`): each starts
its own private dockerd (or Podman) and cleans up after itself; with CHAOSVOL_DOCKERD=26 the
dockerd is 26.1 (each runs on both). late-create is left out: it
waits out dockerd's 2-minute Create timeout, and tests/e2e/test_scenarios.py covers it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DOCKERDS
from tests.support.policy import unavailable

EXAMPLES = Path(__file__).parents[2] / "examples"
SCRIPTS = [p for p in sorted(EXAMPLES.glob("*.sh")) if p.name not in ("lib.sh", "late-create.sh", "podman.sh")]
PODMAN = {
    "drop-removes": "unknown-to-daemon precious",
    "get-fails": "unknown-to-daemon precious",
    "list-fails": "unknown-to-daemon one",
    "create-err-200": "stale-in-daemon phantom",
    "unmount-fails": "leaked-mount data",
}


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", *command], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("build", DOCKERDS, ids=[f"dockerd{b}" for b in DOCKERDS])
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_an_example_runs_to_the_end_and_audits(script: Path, build: str, daemons: Any) -> None:
    version = daemons.get(build).version  # this build can run here (or the reason it cannot)
    output = run(str(script), env={**os.environ, "CHAOSVOL_DOCKERD": build}).stdout
    assert f"a private dockerd ({version}) is up" in output
    if "\naudit" in script.read_text():
        assert "(exit status" in output  # it reached its audit


@pytest.mark.parametrize("scenario", sorted(PODMAN))
def test_a_podman_example_shows_its_inconsistency(scenario: str) -> None:
    from chaosvol.testing.private_podman import PodmanUnavailable, PrivatePodman

    try:
        PrivatePodman.start().stop()
    except PodmanUnavailable as exc:
        unavailable(f"Podman unavailable: {exc}")
    assert PODMAN[scenario] in run(str(EXAMPLES / "podman.sh"), scenario).stdout
