"""A private dockerd for tests and the benchmark: the recipe measured for chaosvol.

Its own data-root, exec-root, API socket and pidfile under a short temporary directory; no
iptables, no bridge. `/run/docker/plugins` is shared with every other dockerd on the host, so
the tests use unique plugin and volume names.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = "bb:local"


def busybox_tree(tree: str) -> None:
    """A root filesystem in `tree`: busybox-static and a link per applet (not one named busybox,
    which would replace the binary with a link to itself)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    os.makedirs(f"{tree}/bin")
    shutil.copy(busybox, f"{tree}/bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", f"{tree}/bin/{applet}")


def docker_cli() -> str:
    # The client that matches the daemon (a newer one first on PATH may word things differently).
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")


class DockerdUnavailable(Exception):
    """dockerd cannot run here; the message says why."""


@dataclass
class PrivateDockerd:
    host: str
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def restart(self, timeout: float = 600.0) -> float:
        """Stop this daemon and start it again on the same state; seconds until its API answers."""
        assert self.directory is not None, "only a daemon this suite started can be restarted"
        self.stop(keep_state=True)
        started = time.monotonic()
        self.process = self._spawn(self.directory)
        self._wait_until_up(timeout)
        return time.monotonic() - started

    @classmethod
    def start(cls, timeout: float = 60.0) -> PrivateDockerd:
        if os.geteuid() != 0:
            raise DockerdUnavailable("the end-to-end tests need root (dockerd and /run/docker/plugins)")
        for tool in ("dockerd", "busybox"):
            if shutil.which(tool) is None and not os.path.exists(f"/bin/{tool}"):
                raise DockerdUnavailable(f"{tool} is not installed (Debian: apt-get install docker.io busybox-static)")
        directory = Path(tempfile.mkdtemp(prefix="cvd", dir="/tmp"))
        daemon = cls(f"unix://{directory}/docker.sock", directory, cls._spawn(directory))
        try:
            daemon._wait_until_up(timeout)
        except DockerdUnavailable:
            daemon.stop()
            raise
        daemon.import_busybox()
        return daemon

    @staticmethod
    def _spawn(directory: Path) -> subprocess.Popen[bytes]:
        with open(directory / "dockerd.log", "ab") as log:
            return subprocess.Popen(
                [
                    "dockerd", "--data-root", str(directory / "root"), "--exec-root", str(directory / "exec"),
                    "-H", f"unix://{directory}/docker.sock", "--pidfile", str(directory / "docker.pid"),
                    "--iptables=false", "--bridge=none", "--debug",
                ],
                stdout=log, stderr=subprocess.STDOUT,
            )

    def _wait_until_up(self, timeout: float) -> None:
        assert self.process is not None and self.directory is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.directory / "dockerd.log").read_text(errors="replace")[-3000:]
                raise DockerdUnavailable(f"dockerd exited with {self.process.returncode}:\n{tail}")
            try:
                if self.docker("version", check=False, timeout=10).returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                continue  # the API socket is there but dockerd is still restoring volumes
            time.sleep(0.2)
        tail = (self.directory / "dockerd.log").read_text(errors="replace")[-3000:]
        raise DockerdUnavailable(f"dockerd did not answer within {timeout:g}s:\n{tail}")

    @classmethod
    def existing(cls, host: str) -> PrivateDockerd:
        daemon = cls(host)
        if daemon.docker("version", check=False).returncode != 0:
            raise DockerdUnavailable(f"no dockerd answers at {host}")
        if daemon.docker("image", "inspect", IMAGE, check=False).returncode != 0:
            daemon.import_busybox()
        return daemon

    def import_busybox(self) -> None:
        """bb:local: busybox-static in an image, no registry needed."""
        with tempfile.TemporaryDirectory(prefix="cvbb", dir="/tmp") as tree:
            busybox_tree(tree)
            tar = subprocess.run(["tar", "-C", tree, "-c", "."], capture_output=True, check=True).stdout
            subprocess.run(
                [docker_cli(), "import", "-c", "ENV PATH=/bin", "-c", 'CMD ["/bin/sh"]', "-", IMAGE],
                input=tar, capture_output=True, check=True, env=self.environment(),
            )

    def environment(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def client(self) -> Any:
        """A Docker SDK client (`docker.DockerClient`) for this daemon; close it when done."""
        import docker

        return docker.DockerClient(base_url=self.host)

    def docker(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [docker_cli(), *args], capture_output=True, text=True, env=self.environment(), timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def stop(self, keep_state: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None and not keep_state:
            subprocess.run(["umount", str(self.directory / "exec" / "netns" / "default")], capture_output=True)
            # Unmount anything an unclean stop left behind, deepest first, then delete.
            mounts = Path("/proc/mounts").read_text().split("\n")
            inside = sorted((m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(str(self.directory))), reverse=True)
            for mountpoint in inside:
                subprocess.run(["umount", "-l", mountpoint], capture_output=True)
            shutil.rmtree(self.directory, ignore_errors=True)
