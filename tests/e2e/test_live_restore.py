"""A daemon restart with live-restore, on each dockerd: the leak users meet as "Pod stuck
Terminating" (profiles/restore-get-fails.yaml), and the same story without a fault, consistent.
Each test starts its own private dockerd with --live-restore (it restarts it) and its own plugin
name (that daemon dies with the test, so no other daemon waits on the name afterwards)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DOCKERDS, Chaosvol, start_chaosvol
from tests.support.audit import run_audit
from tests.support.dockerd import IMAGE, PrivateDockerd


@pytest.fixture(params=DOCKERDS, ids=[f"dockerd{b}" for b in DOCKERDS])
def restartable(request: pytest.FixtureRequest, daemons: Any) -> Iterator[PrivateDockerd]:
    daemons.get(request.param)  # this build can run here (or the reason it cannot)
    daemon = PrivateDockerd.start(build=request.param, flags=("--live-restore",))
    try:
        yield daemon
    finally:
        daemon.stop()


def story(daemon: PrivateDockerd, tmp_path: Path, profile: str) -> tuple[Chaosvol, dict[str, Any]]:
    """create v1 with a label, a container using it, dockerd restarted, the container stopped and
    removed, then `volume rm v1`: each step's outcome."""
    proxy = start_chaosvol(f"cv-lr-{secrets.token_hex(3)}", tmp_path / "backend", profile, tmp_path / "events.jsonl")
    seen: dict[str, Any] = {}
    try:
        daemon.docker("volume", "create", "-d", proxy.name, "--label", "team=a", "v1")
        daemon.docker("run", "-d", "--name", "c1", "-v", "v1:/data", IMAGE, "sleep", "600")
        before = len(proxy.events())
        daemon.restart()
        seen["after restart"] = daemon.docker("inspect", "-f", "{{.State.Status}}", "c1").stdout.strip()
        daemon.docker("stop", "-t", "1", "c1")
        daemon.docker("rm", "c1")
        seen["rm"] = daemon.docker("volume", "rm", "v1", check=False)
        seen["ls"] = daemon.docker("volume", "ls", "-q").stdout.split()
        seen["calls"] = [(e["op"], e["rule"]) for e in proxy.events()[before:]]
        meta = proxy.volume_dir("v1") / "meta.json"
        seen["mounts"] = json.loads(meta.read_text())["mounts"] if meta.exists() else None
    except BaseException:  # the test never gets the proxy to stop it
        proxy.stop()
        raise
    return proxy, seen


def audit(daemon: PrivateDockerd, proxy: Chaosvol) -> list[tuple[str, str]]:
    return sorted((f["kind"], f["volume"]) for f in run_audit(daemon.host, proxy.name, proxy.backend_root, proxy.events_path))


def test_lookups_failing_while_dockerd_restores_leak_the_mount_and_the_volume_cannot_be_removed(restartable: PrivateDockerd, tmp_path: Path) -> None:
    proxy, seen = story(restartable, tmp_path, "restore-get-fails")
    try:
        assert seen["after restart"] == "running"  # live-restore kept the container
        assert ("Activate", None) in seen["calls"]  # dockerd activated the plugin again...
        assert [op for op, rule in seen["calls"] if rule == "restore-get-fails"] == ["Get", "Get", "Get"]  # ...and its lookups failed
        assert "Unmount" not in [op for op, _ in seen["calls"]]  # `docker stop` released nothing
        assert seen["rm"].returncode == 1 and seen["rm"].stderr.strip() == restartable.no_such_volume("v1")
        assert "v1" in seen["ls"]  # yet it is listed again
        assert seen["mounts"] and list(seen["mounts"].values()) == [1]  # the backend still counts the mount
        assert audit(restartable, proxy) == [("leaked-mount", "v1"), ("metadata-lost", "v1"), ("unknown-to-daemon", "v1")]
    finally:
        proxy.stop()


def test_without_a_fault_the_restart_is_invisible_and_the_audit_says_consistent(restartable: PrivateDockerd, tmp_path: Path) -> None:
    proxy, seen = story(restartable, tmp_path, "passthrough")
    try:
        assert seen["after restart"] == "running"
        assert "Unmount" in [op for op, _ in seen["calls"]]  # `docker stop` released the mount
        assert seen["rm"].returncode == 0 and "v1" not in seen["ls"]
        assert seen["mounts"] is None  # removed from the backend
        assert audit(restartable, proxy) == []
    finally:
        proxy.stop()
