"""Fixtures for the end-to-end tests: a private dockerd and chaosvol in front of it.

In CI (CI=true) a dockerd that cannot start is a failure, never a skip. Elsewhere the tests are
skipped with the reason shown. CHAOSVOL_TEST_DOCKER_HOST points the suite at a daemon started
beforehand (.ci/run does that); otherwise the suite starts its own.

One plugin name per session (`cv-e2e-<random>`): dockerd caches a legacy plugin by name and keeps
asking it, so each test restarts chaosvol on the same socket with its own profile rather than
leaving dead plugin names behind (each would cost 15 s in every later `docker volume ls`).
"""

from __future__ import annotations

import json
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

from tests.support.dockerd import DockerdUnavailable, PrivateDockerd
from tests.support.events import call_lines
from tests.support.policy import unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[PrivateDockerd]:
    started: PrivateDockerd | None = None
    try:
        host = os.environ.get("CHAOSVOL_TEST_DOCKER_HOST")
        daemon = PrivateDockerd.existing(host) if host else PrivateDockerd.start()
        started = None if host else daemon
    except DockerdUnavailable as exc:
        unavailable(f"dockerd unavailable: {exc}")
    try:
        yield daemon
    finally:
        if started is not None:
            started.stop()


@pytest.fixture(scope="session")
def plugin_name() -> str:
    return f"cv-e2e-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def backend_root() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="cve2e", dir="/tmp"))
    yield directory
    subprocess.run(["rm", "-rf", str(directory)])


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
        result = subprocess.run([sys.executable, "-m", "chaosvol", "ctl", "--name", self.name, *args], capture_output=True, text=True, timeout=120)
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
        result = subprocess.run(
            [sys.executable, "-m", "chaosvol", "audit", "--docker-host", self.dockerd.host, "--driver", name,
             "--backend", f"builtin:{self.backend_root}", "--events", str(self.directory / f"events-{name}.jsonl"), "--json"],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode in (0, 1), result.stderr
        findings = json.loads(result.stdout)
        assert (result.returncode == 1) == bool(findings)
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
