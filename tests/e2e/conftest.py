"""Fixtures for the end-to-end tests: a private dockerd and chaosvol in front of it.

In CI (CI=true) a dockerd that cannot start is a failure, never a skip. Elsewhere the tests are
skipped with the reason shown. CHAOSVOL_TEST_DOCKER_HOST points the suite at a daemon started
beforehand (.ci/run does that); otherwise the suite starts its own.

Two dockerd builds: "20" (the machine's, Debian 12's 20.10) and "26" (Debian 13's 26.1 from the
chroot scripts/build-dockerd-26 makes). A scenario module runs every test on each
(`pytestmark = on_each_dockerd()`; the test id says which: `[dockerd20]`, `[dockerd26]`);
CHAOSVOL_TEST_DOCKERD=20 (or 26) narrows that. Other tests get the 20.10 daemon.

One plugin name per session and daemon (`cv-e2e-<random>-d20`): dockerd caches a legacy plugin by
name and keeps asking it, so each test restarts chaosvol on the same socket with its own profile
rather than leaving dead plugin names behind (each would cost 15 s in every later `docker volume ls`).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.audit import run_audit
from tests.support.dockerd import DockerdUnavailable, PrivateDockerd
from tests.support.events import call_lines
from tests.support.policy import unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


DOCKERDS = [build.strip() for build in os.environ.get("CHAOSVOL_TEST_DOCKERD", "20,26").split(",") if build.strip()]


def on_each_dockerd() -> pytest.MarkDecorator:
    """Run a module's (or a test's) tests once per dockerd build, the id saying which."""
    return pytest.mark.parametrize("dockerd", DOCKERDS, indirect=True, ids=[f"dockerd{build}" for build in DOCKERDS])


class Daemons:
    """The session's private daemons, one per build, started when first asked for. The 20.10 one
    is CHAOSVOL_TEST_DOCKER_HOST's when set (.ci/run starts it beforehand)."""

    def __init__(self) -> None:
        self.running: dict[str, PrivateDockerd] = {}
        self.started: list[PrivateDockerd] = []
        self.broken: dict[str, str] = {}

    def get(self, build: str) -> PrivateDockerd:
        if build in self.broken:
            unavailable(self.broken[build])
        if build not in self.running:
            host = os.environ.get("CHAOSVOL_TEST_DOCKER_HOST") if build == "20" else None
            try:
                daemon = PrivateDockerd.existing(host) if host else PrivateDockerd.start(build=build)
            except DockerdUnavailable as exc:
                self.broken[build] = f"dockerd {build} unavailable: {exc}"
                unavailable(self.broken[build])
            if not host:
                self.started.append(daemon)
            self.running[build] = daemon
        return self.running[build]


@pytest.fixture(scope="session")
def daemons() -> Iterator[Daemons]:
    pool = Daemons()
    try:
        yield pool
    finally:
        for daemon in pool.started:
            daemon.stop()


@pytest.fixture
def dockerd(request: pytest.FixtureRequest, daemons: Daemons) -> PrivateDockerd:
    return daemons.get(getattr(request, "param", "20"))


@pytest.fixture(scope="session")
def session_token() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def plugin_name(session_token: str, dockerd: PrivateDockerd) -> str:
    """The plugin name the session's tests use on this daemon (one per daemon: neither ever
    activates, and so never waits for, the other's)."""
    return f"cv-e2e-{session_token}-d{dockerd.major}"


@pytest.fixture(scope="session")
def backend_root() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cve2e", dir="/tmp"))
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@dataclass
class Chaosvol:
    """One chaosvol process serving `name` in front of the session's built-in backend."""

    name: str
    events_path: Path
    backend_root: Path
    process: subprocess.Popen[str]

    def events(self) -> list[dict[str, Any]]:
        return call_lines(self.events_path)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`chaosvol ctl --name NAME ARGS...` as a user runs it; it must succeed."""
        result = subprocess.run([sys.executable, "-m", "chaosvol", "ctl", "--name", self.name, *args], capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, f"ctl {' '.join(args)}: {result.returncode} {result.stderr}"
        return result

    def volume_dir(self, volume: str) -> Path:
        return self.backend_root / "volumes" / volume

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)


def start_chaosvol(name: str, backend_root: Path, profile: str, events: Path, *extra: str) -> Chaosvol:
    # stderr goes to a file, never a pipe nobody reads: a full pipe would stall the proxy.
    log = events.with_suffix(f".{time.monotonic_ns()}.log")
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chaosvol", "serve", "--name", name, "--backend", f"builtin:{backend_root}",
             "--profile", profile, "--events", str(events), *extra],
            stderr=stderr, text=True,
        )
    deadline = time.monotonic() + 20
    while "chaosvol: serving" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"chaosvol did not start ({process.poll()}): {log.read_text()}")
        time.sleep(0.02)
    return Chaosvol(name, events, backend_root, process)


@pytest.fixture(scope="session")
def keepers(backend_root: Path) -> Iterator[dict[str, Chaosvol]]:
    """Plugin names kept served (pass-through) between tests and until the session ends: dockerd
    never forgets a plugin it activated, and a dead one costs 15 s in every `docker volume ls`."""
    kept: dict[str, Chaosvol] = {}
    yield kept
    for name, proxy in kept.items():
        assert proxy.stop() == 0
        assert not os.path.exists(f"/run/docker/plugins/{name}.sock"), "chaosvol left its socket behind"


class Scenario:
    """A test's handle: start chaosvol with a profile, run docker, audit, and clean up after."""

    def __init__(self, dockerd: PrivateDockerd, name: str, backend_root: Path, directory: Path, keepers: dict[str, Chaosvol]) -> None:
        self.dockerd = dockerd
        self.name = name
        self.backend_root = backend_root
        self.directory = directory
        self.keepers = keepers
        self.running: dict[str, Chaosvol] = {}
        self.volumes: list[str] = []

    def start(self, profile: str = "passthrough", *, name: str | None = None) -> Chaosvol:
        """(Re)start chaosvol for `name` (default: the session's plugin) with `profile`."""
        name = name or self.name
        self.stop(name)
        if name in self.keepers:
            self.keepers.pop(name).stop()
        proxy = start_chaosvol(name, self.backend_root, profile, self.directory / f"events-{name}.jsonl")
        self.running[name] = proxy
        return proxy

    def hand_over(self, name: str | None = None) -> str:
        """Stop every chaosvol serving `name`, so that the test can serve it another way (cleanup
        serves it again)."""
        name = name or self.name
        self.stop(name)
        if name in self.keepers:
            self.keepers.pop(name).stop()
        return name

    def stop(self, name: str | None = None) -> None:
        proxy = self.running.pop(name or self.name, None)
        if proxy is not None:
            code = proxy.stop()
            assert code == 0, f"chaosvol exited {code} at SIGTERM"

    def volume(self, prefix: str = "cvv") -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.volumes.append(name)
        return name

    def docker(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.dockerd.docker(*args, check=check, timeout=timeout)

    def audit(self, name: str | None = None) -> list[tuple[str, str]]:
        """`chaosvol audit --json` as a user runs it: (kind, volume) pairs for this test's volumes."""
        name = name or self.name
        findings = run_audit(self.dockerd.host, name, self.backend_root, self.directory / f"events-{name}.jsonl")
        return sorted((f["kind"], f["volume"]) for f in findings if f["volume"] in self.volumes)

    def cleanup(self) -> None:
        """Leave nothing behind: containers, volumes (dockerd's and the backend's), processes."""
        self.start("passthrough")
        if self.volumes:
            for volume in self.volumes:
                containers = self.docker("ps", "-aq", "--filter", f"volume={volume}", check=False).stdout.split()
                if containers:
                    self.docker("rm", "-f", *containers, check=False)
                self.docker("volume", "rm", "-f", volume, check=False)
                subprocess.run(["rm", "-rf", str(self.backend_root / "volumes" / volume)], check=False)
        for name in list(self.running):
            if name != self.name:
                self.start("passthrough", name=name)
            self.keepers[name] = self.running.pop(name)


@pytest.fixture
def scenario(plugin_name: str, backend_root: Path, dockerd: PrivateDockerd, tmp_path: Path, keepers: dict[str, Chaosvol]) -> Iterator[Scenario]:
    handle = Scenario(dockerd, plugin_name, backend_root, tmp_path, keepers)
    try:
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture
def chaosvol(scenario: Scenario) -> Any:
    """Start chaosvol (as users do: the CLI) in front of the built-in backend with a profile."""
    return scenario.start


@pytest.fixture
def volume_name() -> str:
    return f"cvv-{secrets.token_hex(4)}"
