"""chaosvol as a managed plugin against the real dockerd, as the README's section tells a user:
build it with no registry, set a profile, enable, write and read data through containers, see
a dropped remove from docker's own output; then in front of a legacy backend (Mountpoints
rewritten so that containers see the backend's data) and of a managed backend; then remove
everything, leaving nothing behind."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.dockerd import IMAGE, PrivateDockerd
from tests.support.events import call_lines

REPO = Path(__file__).parents[2]


class Managed:
    def __init__(self, dockerd: PrivateDockerd) -> None:
        self.dockerd = dockerd
        self.plugins: list[str] = []
        self.token = secrets.token_hex(3)
        self.data_root = Path(dockerd.docker("info", "-f", "{{.DockerRootDir}}").stdout.strip())

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.dockerd.docker(*args, check=check, timeout=300)

    def build(self, name: str) -> float:
        started = time.monotonic()
        self.plugins.append(f"{name}:latest")
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-plugin"), "--name", name],
            env=self.dockerd.environment(), capture_output=True, text=True, timeout=900, check=False,
        )
        print(result.stderr)
        assert result.returncode == 0, result.stderr[-3000:]
        return time.monotonic() - started

    def ident(self, name: str) -> str:
        return self.docker("plugin", "inspect", "-f", "{{.Id}}", name).stdout.strip()

    def propagated(self, name: str) -> Path:
        return self.data_root / "plugins" / self.ident(name) / "propagated-mount"

    def ctl(self, name: str, *args: str) -> str:
        """`chaosvol ctl --plugin NAME ...`: the managed plugin's control socket, found through dockerd."""
        result = subprocess.run(
            [sys.executable, "-m", "chaosvol", "ctl", "--plugin", name, *args], capture_output=True, text=True, timeout=60, env=self.dockerd.environment(), check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def remove_everything(self) -> None:
        for plugin in reversed(self.plugins):
            for volume in self.docker("volume", "ls", "-q", "--filter", f"driver={plugin}", check=False).stdout.split():
                self.docker("volume", "rm", "-f", volume, check=False)
            self.docker("plugin", "disable", "-f", plugin, check=False)
            self.docker("plugin", "rm", "-f", plugin, check=False)
        self.docker("image", "rm", "-f", "chaosvol-plugin-build:local", check=False)


@pytest.fixture
def managed(dockerd: Any) -> Iterator[Managed]:
    handle = Managed(dockerd)
    try:
        yield handle
    finally:
        handle.remove_everything()


def test_the_managed_plugin_serves_volumes_and_injects_faults(managed: Managed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    name = f"cvm-{managed.token}"
    plugin = f"{name}:latest"
    volume = f"cvmv-{managed.token}"
    first_build = managed.build(name)
    docker = managed.docker

    # The README's steps: set a profile, enable, use.
    docker("plugin", "set", name, "PROFILE=drop-removes")
    docker("plugin", "enable", name)
    docker("volume", "create", "-d", name, volume)
    docker("run", "--rm", "-v", f"{volume}:/data", IMAGE, "sh", "-c", "echo hello > /data/f")
    assert docker("run", "--rm", "-v", f"{volume}:/data", IMAGE, "cat", "/data/f").stdout == "hello\n"
    assert (managed.propagated(name) / "builtin" / "volumes" / volume / "_data" / "f").read_text() == "hello\n"
    assert docker("volume", "rm", volume).stdout.strip() == volume  # dockerd says: removed ...
    assert volume in docker("volume", "ls", "-q").stdout.split()  # ... and it is back: the remove was dropped
    events = call_lines(managed.propagated(name) / "events" / "events.jsonl")
    assert [(e["op"], e["action"], e["forwarded"]) for e in events if e["op"] == "Remove"] == [("Remove", "drop", False)]
    assert "drop-removes.yaml (1 rule" in managed.ctl(name, "status")

    # Change the profile: pause (so the remove reaches the backend), remove, disable, set, enable.
    managed.ctl(name, "pause")
    docker("volume", "rm", volume)
    docker("plugin", "disable", name)
    backend_root = tmp_path / "legacy"
    backend_root.mkdir()
    legacy = f"cvlegacy-{managed.token}"
    backend = subprocess.Popen([sys.executable, "-m", "chaosvol", "backend", "--name", legacy, "--root", str(backend_root)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(f"/run/docker/plugins/{legacy}.sock") and time.monotonic() < deadline:
            time.sleep(0.05)
        # In front of a legacy backend: its Mountpoints rewritten under the propagated mount.
        docker("plugin", "set", name, "PROFILE=passthrough", f"BACKEND={legacy}", f"BACKEND_ROOT={backend_root}", f"backend.source={backend_root}")
        docker("plugin", "enable", name)
        docker("volume", "create", "-d", name, volume)
        docker("run", "--rm", "-v", f"{volume}:/data", IMAGE, "sh", "-c", "echo through-the-proxy > /data/f")
        assert (backend_root / "volumes" / volume / "_data" / "f").read_text() == "through-the-proxy\n"
        assert docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip() == f"{backend_root}/volumes/{volume}/_data"
        docker("volume", "rm", volume)
        assert not (backend_root / "volumes" / volume).exists()
        docker("plugin", "disable", name)
    finally:
        backend.terminate()
        backend.wait(10)

    # In front of a managed backend: another chaosvol plugin with its built-in backend.
    back = f"cvmb-{managed.token}"
    second_build = managed.build(back)
    docker("plugin", "enable", back)
    back_id = managed.ident(back)
    back_root = docker("plugin", "inspect", "-f", "{{.Config.PropagatedMount}}", back).stdout.strip()
    docker("plugin", "set", name, f"BACKEND=managed:{back_id}", f"BACKEND_ROOT={back_root}", f"backend.source={managed.propagated(back)}")
    docker("plugin", "enable", name)
    docker("volume", "create", "-d", name, volume)
    docker("run", "--rm", "-v", f"{volume}:/data", IMAGE, "sh", "-c", "echo two-plugins-deep > /data/f")
    assert (managed.propagated(back) / "builtin" / "volumes" / volume / "_data" / "f").read_text() == "two-plugins-deep\n"
    docker("volume", "rm", volume)

    # Remove: nothing left behind.
    ids = [managed.ident(plugin), back_id]
    managed.remove_everything()
    listed = docker("plugin", "ls", "--format", "{{.Name}}").stdout.split()
    assert plugin not in listed and f"{back}:latest" not in listed
    assert not any(os.path.exists(f"/run/docker/plugins/{ident}") for ident in ids)
    assert not any((managed.data_root / "plugins" / ident).exists() for ident in ids)
    with capsys.disabled():  # shown in CI's log too
        print(f"\nmanaged plugin end-to-end: {time.monotonic() - started:.1f}s (builds {first_build:.1f}s and {second_build:.1f}s)")
