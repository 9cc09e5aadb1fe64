"""A private Podman, isolated from the machine's own Podman state: for the test suite, the
examples, and anyone who wants to try a profile under Podman without touching their setup.

Its own storage (`--root`, `--runroot`, `--tmpdir`, the vfs driver, which works on any
filesystem) and its own containers.conf through CONTAINERS_CONF, which replaces every other
containers.conf file: so it carries the volume plugins registered here, cgroupfs (no systemd
needed), and the ulimits that let `podman run` work where root lacks CAP_SYS_RESOURCE
(podman-behaviour.md §1). Images come from busybox-static (`localhost/bb:local`), no registry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from chaosvol.testing.private_dockerd import DockerdUnavailable, busybox_tree

IMAGE = "localhost/bb:local"


class PodmanUnavailable(DockerdUnavailable):
    """No Podman can run here (not installed, not root); says why."""


class PrivatePodman:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conf = directory / "containers.conf"
        self.plugins: dict[str, str] = {}

    @classmethod
    def start(cls) -> PrivatePodman:
        """Raises:
        PodmanUnavailable: podman or busybox-static is missing, or we are not root."""
        if os.geteuid() != 0:
            raise PodmanUnavailable("the Podman tests need root")
        for tool in ("podman", "busybox"):
            if shutil.which(tool) is None:
                raise PodmanUnavailable(f"{tool} is not installed (Debian: apt-get install podman busybox-static)")
        podman = cls(Path(tempfile.mkdtemp(prefix="cvpod", dir="/tmp")))
        podman.write_conf()
        try:
            podman.import_busybox()
        except subprocess.CalledProcessError as exc:
            podman.stop()
            raise PodmanUnavailable(f"podman cannot import an image: {exc.stderr}") from exc
        return podman

    def command(self) -> list[str]:
        """`podman` with this instance's global options."""
        d = self.directory
        return ["podman", "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"), "--storage-driver", "vfs"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def register(self, name: str, socket: str) -> None:
        """Make the volume plugin `name` at `socket` known (Podman reads the file per process)."""
        self.plugins[name] = socket
        self.write_conf()

    def write_conf(self) -> None:
        plugins = "".join(f"{json.dumps(name)} = {json.dumps(path)}\n" for name, path in sorted(self.plugins.items()))
        self.conf.write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            'netns = "none"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.directory / "events.log"}"\n'
            "[engine.volume_plugins]\n" + plugins,
            encoding="utf-8",
        )

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.command(), *args], capture_output=True, text=True, env=self.environment(), timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def import_busybox(self) -> None:
        with tempfile.TemporaryDirectory(prefix="cvbb", dir="/tmp") as tree:
            busybox_tree(tree)
            subprocess.run(["tar", "-C", tree, "-cf", f"{tree}.tar", "."], check=True, capture_output=True)
            try:
                subprocess.run(
                    [*self.command(), "import", "--quiet", "--change", "ENV PATH=/bin", f"{tree}.tar", IMAGE],
                    check=True, capture_output=True, text=True, env=self.environment(), timeout=120,
                )
            finally:
                os.unlink(f"{tree}.tar")

    def stop(self) -> None:
        """Remove every container and the whole state; unmount what is left under it."""
        subprocess.run([*self.command(), "rm", "-af", "-t", "0"], capture_output=True, env=self.environment(), timeout=120, check=False)
        mounts = Path("/proc/mounts").read_text().split("\n")
        inside = sorted((m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(str(self.directory))), reverse=True)
        for mountpoint in inside:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
