"""chaosvol sweep against the real dockerd: a workload run once per Remove, with only that Remove
dropped, and the audit of each run in the table."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.dockerd import IMAGE, docker_cli


def test_sweep_drops_each_remove_in_turn_and_audits_each_run(scenario: Any, tmp_path: Path) -> None:
    name = scenario.hand_over()
    first, second = scenario.volume("swa"), scenario.volume("swb")
    workload = tmp_path / "workload.sh"
    workload.write_text(
        f"""set -e
docker={docker_cli()}
$docker volume create -d "$CHAOSVOL_DRIVER" {first}
$docker volume create -d "$CHAOSVOL_DRIVER" {second}
$docker run --rm -v {first}:/data {IMAGE} sh -c 'echo hello > /data/f'
$docker volume rm {first} {second}
"""
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "chaosvol", "sweep", "--name", name, "--docker-host", scenario.dockerd.host,
         "--op", "Remove", "--action", "drop", "--work", str(tmp_path / "work"), "--", "bash", str(workload)],
        capture_output=True, text=True, timeout=600, env=scenario.dockerd.environment(), check=False,
    )
    print(f"sweep took {time.monotonic() - started:.1f}s\n{result.stdout}\n{result.stderr}")
    assert result.returncode == 1, result.stderr  # each dropped remove left an orphan behind
    rows = [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()[:4]]
    assert rows[0] == ["K", "CALL HIT", "EXIT", "AUDIT"]
    assert rows[1] == ["0", "(baseline: no fault)", "0", "consistent"]
    assert [(k, hit.split(" (seq")[0], code, found) for k, hit, code, found in rows[2:]] == [
        ("1", f"Remove {first}", "0", f"unknown-to-daemon {first}"),
        ("2", f"Remove {second}", "0", f"unknown-to-daemon {second}"),
    ]
    assert "[2/2] hit Remove" in result.stderr  # progress while it runs
    assert "2 of 2 run(s) broke the workload or left an inconsistency" in result.stdout
    assert scenario.docker("volume", "ls", "-q", "-f", f"name={first}").stdout.strip() == ""  # cleaned up
