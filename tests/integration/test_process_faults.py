"""chaosvol's own faults, as a process: SIGTERM mid-call, SIGKILL and restart, a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chaosvol.core.protocol import PluginReply
from chaosvol.proxy.control import ControlClient, control_path_for
from tests.integration.test_cli import CHAOSVOL, call, serving
from tests.support.builders import create, get, mount, remove
from tests.support.events import call_lines


def test_sigterm_answers_the_calls_in_flight_then_exits_0(short_tmp: str) -> None:
    sock, profile = f"{short_tmp}/p.sock", Path(short_tmp) / "p.yaml"
    profile.write_text("version: 1\nrules:\n  - {match: {op: Get}, action: {delay: {duration: 3s}}}\n")  # within the 5 s grace
    with serving("--socket", sock, "--backend", f"builtin:{short_tmp}/v", "--profile", str(profile)) as process:
        answers: list[PluginReply] = []
        thread = threading.Thread(target=lambda: answers.append(call(sock, get("v"))))
        thread.start()
        control = ControlClient(control_path_for(sock))
        deadline = time.monotonic() + 10
        while control.status()["in_flight"] == 0:  # the Get is read and its delay has begun
            assert time.monotonic() < deadline, "the Get never reached the proxy"
        process.send_signal(signal.SIGTERM)
        thread.join(10)
        assert process.wait(10) == 0
    assert [a.status for a in answers] == [500]  # answered (the backend's honest "no such volume")
    assert not os.path.exists(sock)


def test_after_sigkill_a_restart_replaces_the_stale_socket_and_finds_state_and_log_intact(short_tmp: str) -> None:
    sock, events = f"{short_tmp}/p.sock", f"{short_tmp}/events.jsonl"
    args = ("--socket", sock, "--backend", f"builtin:{short_tmp}/v", "--events", events)
    with serving(*args) as process:
        assert call(sock, create("v1")).err is None
        assert call(sock, mount("v1")).err is None
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert os.path.exists(sock)  # a dead plugin's leftover
    with serving(*args):
        listed = call(sock, get("v1")).decoded()["Volume"]
        assert listed["Name"] == "v1" and len(listed["Status"]["mounts"]) == 1  # state survived
        assert call(sock, remove("v1")).status == 500  # still mounted: the refcount survived too
    ops = [line["op"] for line in call_lines(Path(events))]  # every line written is complete and parses
    # A record is written just after its answer: SIGKILL right after a call may lose that one.
    assert ops[0] == "Create" and set(ops) <= {"Create", "Mount", "Get", "Remove"}
    report = subprocess.run([*CHAOSVOL, "report", events], capture_output=True, text=True, timeout=30, check=False)
    assert report.returncode == 0 and "calls" in report.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")
def test_a_full_disk_for_the_event_log_loses_records_not_calls(short_tmp: str) -> None:
    full = Path(short_tmp) / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(full)], check=True)
    try:
        sock = f"{short_tmp}/p.sock"
        process = subprocess.Popen(
            [*CHAOSVOL, "serve", "--socket", sock, "--backend", f"builtin:{short_tmp}/v", "--events", str(full / "e.jsonl")],
            stderr=subprocess.PIPE, text=True,
        )
        try:
            assert process.stderr is not None
            while "serving" not in process.stderr.readline():
                pass
            for _ in range(400):  # about 120 KB of records into 16 KB
                assert call(sock, get("v")).status == 500
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            log = process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()  # type: ignore[union-attr]
        assert "No space left on device" in log and "record(s) lost" in log
        lines = call_lines(full / "e.jsonl", partial_tail=True)  # complete lines parse; the last may be cut
        assert lines and all(line["op"] == "Get" for line in lines)
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_python_dash_m_runs_without_the_console_script() -> None:
    assert subprocess.run([sys.executable, "-m", "chaosvol", "--version"], capture_output=True, text=True, check=False).returncode == 0
