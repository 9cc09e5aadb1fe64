"""chaosvol explore against the real dockerd: a workload that breaks only when a Remove is
dropped (it checks that `docker volume ls` no longer lists what it removed); explore finds
exactly that fault, shrinks it to one rule, and the profile it writes reproduces the failure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.dockerd import docker_cli


def test_explore_finds_the_dropped_remove_and_its_profile_reproduces_it(scenario: Any, tmp_path: Path) -> None:
    name = scenario.hand_over()
    volume = scenario.volume("exp")
    workload = tmp_path / "workload.sh"
    workload.write_text(
        f"""docker={docker_cli()}
$docker volume create -d "$CHAOSVOL_DRIVER" {volume} >/dev/null || exit 0
if $docker volume rm {volume} >/dev/null; then  # removed, says dockerd: it must be gone
    $docker volume ls -q | grep -qx {volume} && exit 1
fi
exit 0
"""
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "chaosvol", "explore", "--name", name, "--docker-host", scenario.dockerd.host, "--no-audit",
         "--ops", "Remove", "--work", str(tmp_path / "work"), "-o", str(tmp_path / "out"), "--", "bash", str(workload)],
        capture_output=True, text=True, timeout=900, env=scenario.dockerd.environment(), check=False,
    )
    print(f"explore took {time.monotonic() - started:.1f}s\n{result.stdout}\n{result.stderr}")
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(run["faults"] for run in summary["runs"] if run["broke"]) == ["Remove#1 drop"]
    assert len(summary["runs"]) == 1 + 5  # the baseline and each default action that works on Remove
    assert [f["faults"] for f in summary["failures"]] == ["Remove#1 drop"] and summary["failures"][0]["verified"]

    # The written profile is the user's regression test: served, it breaks the workload again.
    profile = tmp_path / "out" / "failure-1.yaml"
    scenario.start(str(profile), name=name)
    again = subprocess.run(["bash", str(workload)], env=scenario.dockerd.environment() | {"CHAOSVOL_DRIVER": name},
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 1, again.stderr
