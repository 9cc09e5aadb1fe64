"""A private dockerd for tests and the benchmark: the recipe measured for chaosvol.

Its own data-root, exec-root, API socket and pidfile under a short temporary directory; no
iptables, no bridge. `/run/docker/plugins` is shared with every other dockerd on the host, so
the tests use unique plugin and volume names.

Two builds (`DockerdBuild.named`): "20" is the machine's own dockerd (Debian 12's 20.10); "26" is
Debian 13's docker.io 26.1 run from a chroot (scripts/build-dockerd-26 makes it under
build/dockerd-26, or set CHAOSVOL_DOCKERD_26_ROOT), in its own mount namespace with the host's
`/run/docker/plugins` and `/tmp` bound in, so that plugin sockets and Mountpoints are the same
paths inside and out. A PATH names another dockerd binary, or another chroot holding one.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = "bb:local"
CHROOT_DOCKERD = "usr/sbin/dockerd"


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


def dockerd_26_root() -> Path:
    """Where the dockerd 26 chroot is: $CHAOSVOL_DOCKERD_26_ROOT, else build/dockerd-26 of this checkout."""
    configured = os.environ.get("CHAOSVOL_DOCKERD_26_ROOT")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "build" / "dockerd-26"


class DockerCommandFailed(RuntimeError):
    """A `docker` command run with check=True exited non-zero (its stderr is in the message)."""


class DockerdUnavailable(Exception):
    """dockerd cannot run here; the message says why."""


@dataclass(frozen=True)
class DockerdBuild:
    """Which dockerd to run: a binary on this machine, or one inside a chroot (`root`)."""

    name: str
    dockerd: str
    cli: str
    root: Path | None = None

    @classmethod
    def named(cls, name: str) -> DockerdBuild:
        """ "20" (this machine's dockerd), "26" (the Debian 13 chroot), or a PATH: a dockerd binary,
        or a directory holding a chroot with usr/sbin/dockerd. DockerdUnavailable says what is missing."""
        if name in ("", "20", "host"):
            found = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
            if found is None:
                raise DockerdUnavailable("dockerd is not installed (Debian: apt-get install docker.io busybox-static)")
            return cls("20", found, docker_cli())
        if name == "26":
            root = dockerd_26_root()
            if not (root / CHROOT_DOCKERD).exists():
                raise DockerdUnavailable(
                    f"no dockerd 26 chroot at {root}: build it with scripts/build-dockerd-26 "
                    "(or point CHAOSVOL_DOCKERD_26_ROOT at one)"
                )
            return cls.chroot("26", root)
        path = Path(name)
        if path.is_dir():
            if not (path / CHROOT_DOCKERD).exists():
                raise DockerdUnavailable(f"{path} is a directory without {CHROOT_DOCKERD}: not a dockerd chroot")
            return cls.chroot(str(path), path)
        if path.is_file() and os.access(path, os.X_OK):
            return cls(str(path), str(path), docker_cli())
        raise DockerdUnavailable(f"{name!r} is not a dockerd: use 20, 26, a dockerd binary or a chroot directory")

    @classmethod
    def chroot(cls, name: str, root: Path) -> DockerdBuild:
        cli = root / "usr" / "bin" / "docker"
        return cls(name, f"{root}/{CHROOT_DOCKERD}", str(cli) if cli.exists() else docker_cli(), root.resolve())


# The chroot recipe of ../shared/dockerd-26.md, shared with scripts/dockerd.sh.
CHROOT_SCRIPT = Path(__file__).with_name("dockerd-chroot.sh")


@dataclass
class PrivateDockerd:
    host: str
    directory: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    build: DockerdBuild | None = None
    flags: tuple[str, ...] = ()
    version: str = ""

    @property
    def cli(self) -> str:
        """The docker client that goes with this daemon (wording differs between versions)."""
        return self.build.cli if self.build is not None else docker_cli()

    def no_such_volume(self, volume: str) -> str:
        """What this daemon's CLI prints for a volume dockerd cannot find (the daemon's answer,
        HTTP 404 `get NAME: no such volume`, is the same on both; the 20.10 CLI rewords it)."""
        return f"Error: No such volume: {volume}" if 0 < self.major < 23 else f"Error response from daemon: get {volume}: no such volume"

    @property
    def major(self) -> int:
        """The daemon's major version: 20 or 26 here (0 when unknown)."""
        head = self.version.split(".")[0]
        return int(head) if head.isdigit() else 0

    def restart(self, timeout: float = 600.0, while_down: Callable[[], None] | None = None) -> float:
        """Stop this daemon and start it again on the same state (calling `while_down` in between);
        seconds until its API answers."""
        assert self.directory is not None, "only a daemon this suite started can be restarted"
        self.stop(keep_state=True)
        if while_down is not None:
            while_down()
        started = time.monotonic()
        self.process = self._spawn(self.directory, self.build, self.flags)
        self._wait_until_up(timeout)
        return time.monotonic() - started

    @classmethod
    def start(cls, timeout: float = 60.0, *, build: str | DockerdBuild = "20", flags: tuple[str, ...] = ()) -> PrivateDockerd:
        """Start a private dockerd of `build` (see DockerdBuild.named) with extra `flags`
        (for example `("--live-restore",)`), the test image imported."""
        if os.geteuid() != 0:
            raise DockerdUnavailable("the end-to-end tests need root (dockerd and /run/docker/plugins)")
        chosen = build if isinstance(build, DockerdBuild) else DockerdBuild.named(build)
        if shutil.which("busybox") is None and not os.path.exists("/bin/busybox"):
            raise DockerdUnavailable("busybox is not installed (Debian: apt-get install busybox-static)")
        directory = Path(tempfile.mkdtemp(prefix="cvd", dir="/tmp"))
        daemon = cls(f"unix://{directory}/docker.sock", directory, cls._spawn(directory, chosen, flags), build=chosen, flags=flags)
        try:
            daemon._wait_until_up(timeout)
        except DockerdUnavailable:
            daemon.stop()
            raise
        daemon.version = daemon.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        daemon.import_busybox()
        return daemon

    @staticmethod
    def _spawn(directory: Path, build: DockerdBuild | None, flags: tuple[str, ...]) -> subprocess.Popen[bytes]:
        build = build or DockerdBuild.named("20")
        common = [
            "--data-root", str(directory / "root"), "-H", f"unix://{directory}/docker.sock",
            "--iptables=false", "--bridge=none", "--debug", *flags,
        ]
        if build.root is None:
            argv = [build.dockerd, *common, "--exec-root", str(directory / "exec"), "--pidfile", str(directory / "docker.pid")]
            env = None
        else:
            # Inside the chroot /run is this instance's own directory (directory/run).
            argv = ["unshare", "--mount", "--propagation", "private", "bash", str(CHROOT_SCRIPT), *common]
            env = {**os.environ, "R": str(build.root), "S": str(directory)}
        with open(directory / "dockerd.log", "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

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
        answered = daemon.docker("version", "--format", "{{.Server.Version}}", check=False)
        if answered.returncode != 0:
            raise DockerdUnavailable(f"no dockerd answers at {host}")
        daemon.version = answered.stdout.strip()
        if daemon.docker("image", "inspect", IMAGE, check=False).returncode != 0:
            daemon.import_busybox()
        return daemon

    def import_busybox(self) -> None:
        """bb:local: busybox-static in an image, no registry needed."""
        with tempfile.TemporaryDirectory(prefix="cvbb", dir="/tmp") as tree:
            busybox_tree(tree)
            tar = subprocess.run(["tar", "-C", tree, "-c", "."], capture_output=True, check=True).stdout
            subprocess.run(
                [self.cli, "import", "-c", "ENV PATH=/bin", "-c", 'CMD ["/bin/sh"]', "-", IMAGE],
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
            [self.cli, *args], capture_output=True, text=True, env=self.environment(), timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise DockerCommandFailed(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def stop(self, keep_state: bool = False) -> None:
        """Stop the daemon (SIGTERM); unless `keep_state`, remove its containers first (a
        --live-restore daemon would leave them running) and delete its directory."""
        if not keep_state and "--live-restore" in self.flags and self.process is not None and self.process.poll() is None:
            running = self.docker("ps", "-aq", check=False, timeout=60).stdout.split()
            if running:
                self.docker("rm", "-f", *running, check=False, timeout=120)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None and not keep_state:
            subprocess.run(["umount", str(self.directory / "exec" / "netns" / "default")], capture_output=True, check=False)
            # Unmount anything an unclean stop left behind, deepest first, then delete.
            mounts = Path("/proc/mounts").read_text().split("\n")
            inside = sorted((m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(str(self.directory))), reverse=True)
            for mountpoint in inside:
                subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
            shutil.rmtree(self.directory, ignore_errors=True)
