"""Podman's own inconsistencies, against a real, private Podman (podman-behaviour.md is the
ground truth): each scenario asserts Podman's output and what `chaosvol audit --podman` finds.

chaosvol listens on a private socket (Podman never scans /run/docker/plugins, and no dockerd on
the machine sees it), registered in the private Podman's containers.conf.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosvol.testing.private_podman import IMAGE, PodmanUnavailable, PrivatePodman
from tests.support.events import call_lines
from tests.support.policy import unavailable


@pytest.fixture(scope="session")
def podman() -> Iterator[PrivatePodman]:
    try:
        instance = PrivatePodman.start()
    except PodmanUnavailable as exc:
        unavailable(f"Podman unavailable: {exc}")
    try:
        yield instance
    finally:
        instance.stop()


class PodmanScenario:
    def __init__(self, podman: PrivatePodman) -> None:
        self.podman = podman
        self.directory = Path(tempfile.mkdtemp(prefix="cvpm", dir="/tmp"))
        self.name = f"cvpm-{secrets.token_hex(3)}"
        self.socket = str(self.directory / "p.sock")
        self.backend_root = self.directory / "backend"
        self.events_path = self.directory / "events.jsonl"
        self.process: subprocess.Popen[str] | None = None
        self.volumes: list[str] = []
        podman.register(self.name, self.socket)

    def start(self, profile: str) -> None:
        self.stop()
        log = self.directory / f"serve-{time.monotonic_ns()}.log"
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chaosvol", "serve", "--socket", self.socket, "--backend", f"builtin:{self.backend_root}",
                 "--profile", profile, "--events", str(self.events_path)],
                stderr=stderr, text=True,
            )
        deadline = time.monotonic() + 20
        while "chaosvol: serving" not in log.read_text():
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(15) == 0
        self.process = None

    def volume(self, prefix: str = "pv") -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.volumes.append(name)
        return name

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.podman.podman(*args, check=check)

    def events(self, op: str | None = None) -> list[dict[str, Any]]:
        records = call_lines(self.events_path)
        return [r for r in records if op is None or r["op"] == op]

    def backend_volumes(self) -> list[str]:
        return sorted(p.name for p in (self.backend_root / "volumes").iterdir()) if (self.backend_root / "volumes").exists() else []

    def backend_mounts(self, volume: str) -> dict[str, int]:
        meta = json.loads((self.backend_root / "volumes" / volume / "meta.json").read_text())
        return dict(meta.get("mounts") or {})

    def audit(self) -> list[tuple[str, str]]:
        result = subprocess.run(
            [sys.executable, "-m", "chaosvol", "audit", "--podman", shlex.join(self.podman.command()), "--driver", self.name,
             "--backend", f"builtin:{self.backend_root}", "--events", str(self.events_path), "--json"],
            capture_output=True, text=True, timeout=120, env=self.podman.environment(), check=False,
        )
        assert result.returncode in (0, 1), result.stderr
        return sorted((f["kind"], f["volume"]) for f in json.loads(result.stdout) if f["volume"] in self.volumes)

    def cleanup(self) -> None:
        self.start("passthrough")
        for volume in self.volumes:
            self.run("volume", "rm", "-f", volume, check=False)
        self.stop()
        subprocess.run(["rm", "-rf", str(self.directory)], check=False)


@pytest.fixture
def scenario(podman: PrivatePodman) -> Iterator[PodmanScenario]:
    handle = PodmanScenario(podman)
    try:
        yield handle
    finally:
        handle.cleanup()


def test_podman_through_chaosvol_in_pass_through_is_consistent(scenario: PodmanScenario) -> None:
    scenario.start("passthrough")
    v = scenario.volume()
    scenario.run("volume", "create", "--driver", scenario.name, "--label", "k=v", v)
    run = scenario.run("run", "--rm", "-v", f"{v}:/data", IMAGE, "sh", "-c", "echo hi > /data/f && cat /data/f")
    assert run.stdout == "hi\n"
    assert (scenario.backend_root / "volumes" / v / "_data" / "f").read_text() == "hi\n"
    assert scenario.audit() == []
    requests = scenario.events()
    assert {r["op"] for r in requests} >= {"Activate", "Get", "Create", "Mount", "Unmount"}
    assert all(r["outcome"] == "answered" for r in requests)  # EPIPE on unread 200 bodies is not an error
    scenario.run("volume", "rm", v)
    assert scenario.backend_volumes() == []


def test_a_dropped_remove_leaves_an_orphan_that_podman_never_shows_again(scenario: PodmanScenario) -> None:
    scenario.start("drop-removes")
    v = scenario.volume()
    scenario.run("volume", "create", "--driver", scenario.name, v)
    assert scenario.run("volume", "rm", v).returncode == 0
    assert v not in scenario.run("volume", "ls", "-q").stdout.split()  # unlike dockerd: ls never asks List
    assert scenario.backend_volumes() == [v]
    assert scenario.audit() == [("unknown-to-daemon", v)]


def test_a_failing_get_makes_volume_rm_drop_the_volume_without_sending_remove(scenario: PodmanScenario) -> None:
    scenario.start("get-fails")
    v = scenario.volume()
    assert scenario.run("volume", "create", "--driver", scenario.name, v).returncode == 0  # the Get error is ignored
    rm = scenario.run("volume", "rm", v, check=False)
    assert rm.returncode == 125
    assert f"volume {v} could not be retrieved from plugin {scenario.name}, but it has been removed from Podman" in rm.stderr
    assert scenario.events("Remove") == []  # never asked
    assert scenario.backend_volumes() == [v]
    assert scenario.audit() == [("unknown-to-daemon", v)]


def test_a_failing_list_during_volume_reload_drops_every_unused_plugin_volume(scenario: PodmanScenario) -> None:
    scenario.start("list-fails")
    a, b = scenario.volume("ra"), scenario.volume("rb")
    for v in (a, b):
        scenario.run("volume", "create", "--driver", scenario.name, v)
    reload = scenario.run("volume", "reload", check=False)
    assert reload.returncode == 125 and "chaosvol: injected: List failed" in reload.stderr
    assert {a, b} <= set(reload.stdout.split())  # "Removed:" and the names
    assert not {a, b} & set(scenario.run("volume", "ls", "-q").stdout.split())
    assert scenario.backend_volumes() == sorted([a, b])
    assert scenario.audit() == sorted([("unknown-to-daemon", a), ("unknown-to-daemon", b)])


def test_a_create_answered_200_with_err_is_a_phantom_under_podman(scenario: PodmanScenario) -> None:
    scenario.start("create-err-200")
    v = scenario.volume()
    create = scenario.run("volume", "create", "--driver", scenario.name, v)
    assert (create.returncode, create.stdout.strip()) == (0, v)  # Podman ignores Err in a 200
    ls = scenario.run("volume", "ls", "-q", check=False)  # its Get of the phantom fails, and so does the whole listing
    assert ls.returncode == 125 and f"retrieving volume {v} information from plugin {scenario.name}" in ls.stderr
    assert scenario.backend_volumes() == []
    assert scenario.audit() == [("stale-in-daemon", v)]


def test_an_unmount_error_is_silent_and_leaves_podman_s_mount_count_stuck(scenario: PodmanScenario) -> None:
    scenario.start("unmount-fails")
    v = scenario.volume()
    scenario.run("volume", "create", "--driver", scenario.name, v)
    run = scenario.run("run", "--rm", "-v", f"{v}:/data", IMAGE, "echo", "hi")
    assert (run.returncode, run.stdout) == (0, "hi\n")  # the error went to conmon's cleanup process
    deadline = time.monotonic() + 20
    while not scenario.events("Unmount") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [e["reply"]["status"] for e in scenario.events("Unmount")] == [500]
    assert scenario.run("volume", "inspect", "--format", "{{.MountCount}}", v).stdout.strip() == "1"
    assert sum(scenario.backend_mounts(v).values()) == 1
    assert scenario.audit() == [("leaked-mount", v)]
    second = scenario.run("run", "--rm", "-v", f"{v}:/data", IMAGE, "true")
    assert second.returncode == 0
    assert len(scenario.events("Mount")) == 1  # count 1 -> 2 -> 1: Podman sends neither Mount nor Unmount again


def test_explore_on_podman_finds_the_removes_that_leave_an_orphan_or_a_phantom(podman: PrivatePodman, tmp_path: Path) -> None:
    # A workload that always exits 0: only the audit (`--podman`) can say what broke. Podman forgets
    # a volume whose Remove it was told succeeded (a dropped one: an orphan in the backend), and
    # keeps one whose Remove acted and then failed (a phantom); a Remove that failed before acting
    # leaves both sides agreeing (podman-behaviour.md §4).
    directory = Path(tempfile.mkdtemp(prefix="cvpx", dir="/tmp"))
    name = f"cvpx-{secrets.token_hex(3)}"
    socket = directory / f"{name}.sock"
    podman.register(name, str(socket))
    volume = f"px-{secrets.token_hex(3)}"
    workload = tmp_path / "workload.sh"
    workload.write_text(
        f"""P="{shlex.join(podman.command())}"
$P volume create --driver "$CHAOSVOL_DRIVER" --label team=a {volume} >/dev/null || exit 0
$P volume rm {volume} >/dev/null 2>&1
exit 0
"""
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chaosvol", "explore", "--socket", str(socket), "--podman", shlex.join(podman.command()),
             "--ops", "Remove", "--work", str(tmp_path / "work"), "-o", str(tmp_path / "out"), "--", "bash", str(workload)],
            capture_output=True, text=True, timeout=900, env=podman.environment(), check=False,
        )
        print(result.stdout, result.stderr)
        assert result.returncode == 1, result.stderr
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        verdicts = {run["faults"]: run["findings"] for run in summary["runs"]}
        assert verdicts == {
            "(no fault)": [],
            "Remove#1 drop": [f"unknown-to-daemon {volume}"],
            "Remove#1 {error: {when: before}}": [],
            "Remove#1 {error: {when: after}}": [f"stale-in-daemon {volume}"],
            "Remove#1 {reset: {when: before}}": [],
            "Remove#1 {reset: {when: after}}": [f"stale-in-daemon {volume}"],
        }, verdicts
        assert all(run["exit_status"] == 0 for run in summary["runs"])
        failures = [(f["faults"], f["verified"], f["found_by"]) for f in summary["failures"]]
        assert failures == [
            ("Remove#1 drop", True, ["Remove#1 drop"]),
            # the reset after acting breaks it the same way as the error after acting: one failure, the simpler
            ("Remove#1 {error: {when: after}}", True, ["Remove#1 {error: {when: after}}", "Remove#1 {reset: {when: after}}"]),
        ], failures
        assert podman.podman("volume", "ls", "-q").stdout.split() == []  # the clean-up left nothing of the runs
    finally:
        podman.podman("volume", "rm", "-f", volume, check=False)
        subprocess.run(["rm", "-rf", str(directory)], check=False)
