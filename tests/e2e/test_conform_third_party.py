"""`chaosvol conform` on a plugin someone else wrote: pyvolume 0.1.2 from PyPI (a Flask volume
plugin; scripts/build-pyvolume installs it), run with its `ephemeral` driver over TCP, in a mount
namespace of its own (it bind-mounts with sudo).

What it finds is pyvolume's, measured; the README's "Check your plugin" shows the same report.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.policy import unavailable

ROOT = Path(__file__).resolve().parents[2]
PYVOLUME = ROOT / "build" / "pyvolume" / "bin" / "pyvolume"

# What pyvolume 0.1.2 gets wrong, by daemon (each FAIL's message says what the daemon does with it):
# a second Create fails (the directory exists); every Unmount answers an error, although it
# unmounted, and a Remove after one fails (it runs `umount '<Not Mounted>'`); it counts mounts per
# volume and ignores the IDs; and it reads Opts with rdata['Opts'], so Podman's Create, which
# leaves Opts out, is a 500.
DOCKERD_FAILS = {"create-opts-absent", "create-idempotent", "remove", "mount-path", "mount-refcount", "names", "concurrency"}
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "dockerd-20": (DOCKERD_FAILS, {"remove-while-mounted", "bad-json"}),
    "dockerd-26": (DOCKERD_FAILS, {"remove-while-mounted", "bad-json"}),
    "podman": ({"create-get-list", "create-opts-absent", "create-idempotent", "remove", "mount-path", "remove-while-mounted",
                "names", "concurrency"}, {"bad-json"}),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def conform_pyvolume(tmp_path: Path, daemon: str) -> tuple[int, dict[str, Any]]:
    if not PYVOLUME.exists():
        unavailable(f"{PYVOLUME} is missing (scripts/build-pyvolume installs it)")
    port = free_port()
    script = f"""
set -e
mkdir -p {tmp_path}/base
{PYVOLUME} --driver ephemeral -H 127.0.0.1 -p {port} -m {tmp_path}/base >{tmp_path}/pyvolume.log 2>&1 &
trap 'kill $! 2>/dev/null || true' EXIT
{sys.executable} -c 'import socket, time
for _ in range(200):
    try: socket.create_connection(("127.0.0.1", {port}), 1).close(); break
    except OSError: time.sleep(0.1)'
set +e
{sys.executable} -m chaosvol conform --backend tcp://127.0.0.1:{port} --daemon {daemon} --json >{tmp_path}/report.json
echo $? >{tmp_path}/code
"""
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    code_file = tmp_path / "code"
    assert code_file.exists(), f"conform did not run: {done.stderr}\n{(tmp_path / 'pyvolume.log').read_text()}"
    return int(code_file.read_text()), json.loads((tmp_path / "report.json").read_text())


@pytest.mark.parametrize("daemon", sorted(EXPECTED))
def test_conform_reports_what_pyvolume_gets_wrong(tmp_path: Path, daemon: str) -> None:
    code, report = conform_pyvolume(tmp_path, daemon)
    by_status: dict[str, set[str]] = {}
    for result in report["results"]:
        by_status.setdefault(result["status"], set()).add(result["check"])
    fails, warns = EXPECTED[daemon]
    shown = "\n".join(f"{r['status']} {r['check']}: {r['message'][:200]}" for r in report["results"])
    assert (code, by_status.get("FAIL", set()), by_status.get("WARN", set())) == (1, fails, warns), shown
    assert "activate" in by_status["PASS"] and "latency" in by_status["PASS"]
