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

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
        if IN_CI:
            pytest.fail(f"end-to-end tests need dockerd, and in CI they must run: {exc}")
        pytest.skip(f"dockerd unavailable: {exc}")
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
    name: str
    events_path: Path
    backend_root: Path
    process: subprocess.Popen[str]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_path.read_text().splitlines()]

    def volume_dir(self, volume: str) -> Path:
        return self.backend_root / "volumes" / volume

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)


@pytest.fixture
def chaosvol(plugin_name: str, backend_root: Path, dockerd: PrivateDockerd, tmp_path: Path) -> Iterator[Any]:
    """Start chaosvol (as users do: the CLI) in front of the built-in backend with a profile."""
    running: list[Chaosvol] = []

    def start(profile: str = "passthrough") -> Chaosvol:
        events = tmp_path / f"events-{len(running)}.jsonl"
        process = subprocess.Popen(
            [sys.executable, "-m", "chaosvol", "serve", "--name", plugin_name, "--backend", f"builtin:{backend_root}",
             "--profile", profile, "--events", str(events)],
            stderr=subprocess.PIPE, text=True,
        )
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        ready = ""
        while time.monotonic() < deadline and not ready.startswith("chaosvol: serving"):
            ready = process.stderr.readline()
            if not ready:
                raise AssertionError(f"chaosvol exited with {process.wait()} before its ready line")
        proxy = Chaosvol(plugin_name, events, backend_root, process)
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        code = proxy.stop()
        if proxy.process.stderr is not None:
            proxy.process.stderr.close()
        assert code == 0, f"chaosvol exited {code} at SIGTERM"
    assert not os.path.exists(f"/run/docker/plugins/{plugin_name}.sock")


@pytest.fixture
def volume_name() -> str:
    return f"cvv-{secrets.token_hex(4)}"
