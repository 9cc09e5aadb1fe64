"""The CLI as a user runs it: a subprocess, its output and exit codes, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chaosvol.core.protocol import PluginReply
from chaosvol.faults import FAULTS
from chaosvol.wire.common import WireState
from chaosvol.wire.http import ClientWire
from tests.support.builders import create, remove
from tests.support.events import call_lines

CHAOSVOL = [sys.executable, "-m", "chaosvol"]
ALL_ACTIONS = ", ".join(sorted(FAULTS))


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHAOSVOL, *args], capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([*CHAOSVOL, "serve", *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            if line.startswith("chaosvol: serving "):
                process.ready_line = line  # type: ignore[attr-defined]
                break
        else:
            raise AssertionError("no ready line")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def call(path: str, request: object) -> PluginReply:
    wire = ClientWire()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(wire.request_bytes(request, b""))  # type: ignore[arg-type]
        while True:
            reply = wire.next_reply()
            if reply is not WireState.NEED_DATA:
                assert isinstance(reply, PluginReply)
                return reply
            wire.receive_data(sock.recv(65536))


def test_help_describes_commands() -> None:
    result = run("--help")
    assert result.returncode == 0 and "serve" in result.stdout and "check" in result.stdout
    serve_help = run("serve", "--help").stdout
    assert "--backend SPEC" in serve_help and "drop-removes" in serve_help


def test_check_accepts_shipped_profiles_and_rejects_bad_ones_with_positions(tmp_path: Path) -> None:
    ok = run("check", "drop-removes", "flaky")
    assert ok.returncode == 0 and ok.stdout.count(": ok (") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - match: {op: Remove}\n    action: dorp\n")
    result = run("check", str(bad))
    assert result.returncode == 2
    assert result.stderr == f"{bad}:4:13: rules[0].action: unknown action 'dorp' (did you mean 'drop'?); allowed: {ALL_ACTIONS}\n"


def test_serve_refuses_bad_input_with_one_message_and_exit_2(short_tmp: str) -> None:
    for args, says in [
        (["--profile", "no-such-profile"], "no shipped profile named 'no-such-profile'"),
        (["--backend", "ftp://x"], "unknown scheme 'ftp'"),
        (["--control", f"{short_tmp}/s.sock"], "--control: the control socket cannot be the plugin socket"),
        (["--rewrite-mountpoints", "srv=/mnt"], "--rewrite-mountpoints: 'srv=/mnt' is not FROM=TO with two absolute paths"),
        (["--control", f"{short_tmp}/{'x' * 120}.sock"], "longer than 107 bytes"),
        (["--socket", f"{short_tmp}/{'x' * 120}.sock"], "longer than 107 bytes"),
    ]:
        result = run("serve", "--socket", f"{short_tmp}/s.sock", "--backend", f"builtin:{short_tmp}/v", *args)
        assert result.returncode == 2, result.stderr
        assert says in result.stderr and "Traceback" not in result.stderr


def test_serve_runs_logs_events_and_stops_cleanly_on_sigterm(short_tmp: str) -> None:
    sock, events = f"{short_tmp}/p.sock", f"{short_tmp}/events.jsonl"
    with serving("--socket", sock, "--backend", f"builtin:{short_tmp}/v", "--profile", "drop-removes", "--events", events) as process:
        assert process.ready_line == f"chaosvol: serving p on {sock} -> builtin:{short_tmp}/v\n"  # type: ignore[attr-defined]
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
        assert call(sock, create("v1")).err is None
        assert call(sock, remove("v1")) == PluginReply.ok()
        assert os.path.isdir(f"{short_tmp}/v/volumes/v1")  # the remove was dropped
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert not os.path.exists(sock)
    lines = call_lines(Path(events))
    assert [(r["op"], r["rule"], r["forwarded"]) for r in lines] == [("Create", None, True), ("Remove", "drop-removes", False)]


def test_a_stale_socket_is_replaced_and_a_live_one_refused(short_tmp: str) -> None:
    sock = f"{short_tmp}/p.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()
    with serving("--socket", sock, "--backend", f"builtin:{short_tmp}/v") as process:
        second = run("serve", "--socket", sock, "--backend", f"builtin:{short_tmp}/v2")
        assert second.returncode == 2 and f"another process is serving {sock}" in second.stderr
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


def test_backend_command_serves_the_builtin_backend_alone(short_tmp: str) -> None:
    sock = f"{short_tmp}/b.sock"
    process = subprocess.Popen([*CHAOSVOL, "backend", "--socket", sock, "--root", f"{short_tmp}/r"], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline(), process.stderr.readline()]
        assert lines[1] == f"chaosvol: serving b on {sock} -> builtin:{short_tmp}/r\n"
        assert call(sock, create("v1")).err is None
        assert os.path.isdir(f"{short_tmp}/r/volumes/v1/_data")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("module", [["-m", "chaosvol"]])
def test_python_dash_m_is_the_same_program(module: list[str]) -> None:
    assert subprocess.run([sys.executable, *module, "--version"], capture_output=True, text=True, check=False).stdout.startswith("chaosvol ")


def test_sighup_reloads_the_profile_and_a_bad_or_missing_one_keeps_the_old(short_tmp: str) -> None:
    sock, profile = f"{short_tmp}/p.sock", Path(short_tmp) / "p.yaml"
    profile.write_text("version: 1\nrules:\n  - {name: d, match: {op: Remove}, action: drop}\n")
    with serving("--socket", sock, "--backend", f"builtin:{short_tmp}/v", "--profile", str(profile)) as process:
        assert call(sock, remove("v1")) == PluginReply.ok()  # dropped: the backend would refuse it

        def reload_and_wait(expect: str) -> None:
            process.send_signal(signal.SIGHUP)
            assert process.stderr is not None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                line = process.stderr.readline()
                if expect in line:
                    return
            raise AssertionError(f"no {expect!r} in chaosvol's log")

        profile.write_text("version: 1\nrules:\n  - {name: d, match: {op: Remove}, action: dorp}\n")
        reload_and_wait("the profile was not reloaded")
        assert call(sock, remove("v1")) == PluginReply.ok()  # the old profile stays in force
        profile.unlink()
        reload_and_wait("the profile was not reloaded")
        assert call(sock, remove("v1")) == PluginReply.ok()
        profile.write_text("version: 1\nrules: []\n")
        reload_and_wait("SIGHUP: reloaded")
        assert call(sock, remove("v1")).err == "no such volume: 'v1'"  # forwarded now
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_the_socket_is_never_wider_than_0660_even_with_umask_0(short_tmp: str) -> None:
    sock = f"{short_tmp}/p.sock"
    command = " ".join([*CHAOSVOL, "serve", "--socket", sock, "--backend", f"builtin:{short_tmp}/v"])
    process = subprocess.Popen(["sh", "-c", f"umask 000; exec {command}"], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        while "serving" not in process.stderr.readline():
            pass
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660"
        assert oct(os.stat(f"{short_tmp}/p.ctl.sock").st_mode & 0o777) == "0o600"
        assert sorted(os.listdir(short_tmp)) == ["p.ctl.sock", "p.sock", "v"]  # the private bind directories are gone
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()  # type: ignore[union-attr]


def test_sweep_without_dockerd_fails_each_remove_in_turn(short_tmp: str) -> None:
    sock = f"{short_tmp}/p.sock"
    workload = Path(short_tmp) / "workload.py"
    workload.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[2])!r})\n"
        "from tests.integration.test_cli import call\n"
        "from tests.support.builders import create, remove\n"
        f"for name in 'abc':\n    assert call({sock!r}, create(name)).err is None\n"
        f"for name in 'abc':\n    err = call({sock!r}, remove(name)).err\n"
        "    if err:\n        sys.exit(f'remove {name}: {err}')\n"
    )
    result = run("sweep", "--socket", sock, "--op", "Remove", "--action", "error", "--no-audit", "--work", f"{short_tmp}/w",
                 "--", sys.executable, str(workload), timeout=120)
    assert result.returncode == 1, result.stderr
    rows = [line.split()[:4] for line in result.stdout.splitlines()[1:5]]
    assert rows == [["0", "(baseline:", "no", "fault)"], ["1", "Remove", "a", "(seq"], ["2", "Remove", "b", "(seq"], ["3", "Remove", "c", "(seq"]]
    assert "    | remove b: chaosvol: injected: Remove failed" in result.stdout
    assert "[3/3] failing Remove call #3 with error" in result.stderr
    assert not os.path.exists(sock)


def test_sweep_refuses_a_bad_action_before_running_anything(short_tmp: str) -> None:
    result = run("sweep", "--socket", f"{short_tmp}/p.sock", "--op", "Remove", "--action", "dorp", "--no-audit", "--", "true")
    assert (result.returncode, result.stderr.strip()) == (
        2, ("chaosvol: --op Remove --action 'dorp': action: unknown action 'dorp' (did you mean 'drop'?); allowed: "
            f"{ALL_ACTIONS}"),
    )


def test_podman_register_writes_a_drop_in_and_unregister_removes_it(tmp_path: Path) -> None:
    conf = tmp_path / "containers.conf.d"
    printed = run("podman", "register", "chaosvol", "--print")
    assert printed.returncode == 0
    assert '[engine.volume_plugins]\n"chaosvol" = "/run/docker/plugins/chaosvol.sock"\n' in printed.stdout
    assert not conf.exists()
    assert run("podman", "register", "cv", "--socket", "/tmp/x/cv.sock", "--conf-dir", str(conf)).returncode == 0
    text = (conf / "50-chaosvol-cv.conf").read_text()
    assert text.endswith('[engine.volume_plugins]\n"cv" = "/tmp/x/cv.sock"\n')
    import tomllib

    assert tomllib.loads(text) == {"engine": {"volume_plugins": {"cv": "/tmp/x/cv.sock"}}}
    removed = run("podman", "unregister", "cv", "--conf-dir", str(conf))
    assert removed.returncode == 0 and not (conf / "50-chaosvol-cv.conf").exists()
    again = run("podman", "unregister", "cv", "--conf-dir", str(conf))
    assert (again.returncode, again.stderr.strip()) == (0, "chaosvol podman: nothing to remove for cv")


def test_serve_no_control_serves_no_control_socket(short_tmp: str) -> None:
    with serving("--socket", f"{short_tmp}/p.sock", "--backend", f"builtin:{short_tmp}/v", "--no-control") as process:
        assert sorted(os.listdir(short_tmp)) == ["p.sock", "v"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    result = run("ctl", "--socket", f"{short_tmp}/p.sock", "status")
    assert (result.returncode, result.stderr.strip()) == (2, f"chaosvol: no control socket at {short_tmp}/p.ctl.sock: is `chaosvol serve` running with that name?")


def test_sweep_refuses_a_socket_another_proxy_serves_before_running_anything(short_tmp: str) -> None:
    with serving("--socket", f"{short_tmp}/p.sock", "--backend", f"builtin:{short_tmp}/v"):
        result = run("sweep", "--socket", f"{short_tmp}/p.sock", "--op", "Remove", "--action", "drop", "--no-audit",
                      "--work", f"{short_tmp}/work", "--", "true")
    assert (result.returncode, result.stderr.strip()) == (2, f"chaosvol: another process is serving {short_tmp}/p.sock; stop it first or choose another --name/--socket")
    assert not os.path.exists(f"{short_tmp}/work")


def test_every_path_problem_is_one_clear_line_and_exit_2(short_tmp: str) -> None:
    afile = f"{short_tmp}/afile"  # a regular file where a directory is needed
    Path(afile).write_text("")
    serve = ["serve", "--socket", f"{short_tmp}/s.sock", "--backend", f"builtin:{short_tmp}/v"]
    cases = [
        (["serve", "--socket", f"{afile}/x.sock"], f"chaosvol: cannot use {afile}/x.sock as a socket: {afile} is not a directory"),
        ([*serve, "--control", f"{afile}/c.sock"], f"chaosvol: cannot use {afile}/c.sock as a socket: {afile} is not a directory"),
        (["serve", "--socket", f"{short_tmp}/s.sock", "--backend", f"builtin:{afile}/v"], "cannot use"),
        ([*serve, "--events", f"{afile}/e.jsonl"], f"chaosvol: --events {afile}/e.jsonl: cannot open: Not a directory"),
        ([*serve, "--profile", short_tmp], f"{short_tmp}: cannot read the profile: Is a directory"),
        (["backend", "--socket", f"{afile}/b.sock", "--root", f"{short_tmp}/v"], f"{afile} is not a directory"),
        (["audit", "--backend", f"builtin:{short_tmp}/v", "--docker-host", f"unix://{afile}/d.sock"],
         f"chaosvol: cannot reach dockerd at unix://{afile}/d.sock: Not a directory"),
        (["audit", "--backend", f"builtin:{short_tmp}/v", "--docker-host", "unix:///nonexistent/d.sock"],
         "chaosvol: cannot reach dockerd at unix:///nonexistent/d.sock: No such file or directory"),
        (["audit", "--backend", f"builtin:{short_tmp}/v", "--events", f"{afile}/e"], f"chaosvol: {afile}/e: cannot read: Not a directory"),
        (["podman", "register", "x", "--conf-dir", f"{afile}/d"], f"chaosvol: {afile}/d/50-chaosvol-x.conf: cannot write: Not a directory\n"),
        (["podman", "unregister", "x", "--conf-dir", f"{afile}/d"], "cannot remove: Not a directory"),
        (["ctl", "--control", f"{afile}/c.sock", "status"], f"chaosvol: control socket {afile}/c.sock: Not a directory"),
        (["replay", f"{afile}/e"], f"chaosvol: {afile}/e: cannot read: Not a directory"),
        (["report", f"{afile}/e"], f"chaosvol: {afile}/e: cannot read: Not a directory"),
        (["check", "nope.yaml"], "nope.yaml: cannot read the profile: No such file or directory\n"),
        (["sweep", "--op", "Remove", "--action", "drop", "--socket", f"{afile}/s.sock", "--no-audit", "--", "true"], f"{afile} is not a directory"),
        (["sweep", "--op", "Remove", "--action", "drop", "--socket", f"{short_tmp}/s.sock", "--work", f"{afile}/w", "--no-audit", "--", "true"],
         f"chaosvol: --work {afile}/w: Not a directory"),
    ]
    for args, says in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert says in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr, (args, result.stderr)
    events = Path(short_tmp) / "events.jsonl"
    events.write_text('{"t": "2026-11-23T10:00:00.000001Z", "seq": 1, "op": "List", "volume": null, "rule": null, "ms": 0.1}\n')
    result = run("report", str(events), "--html", f"{afile}/r.html")
    assert result.returncode == 2 and f"chaosvol: --html {afile}/r.html: cannot write: Not a directory" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only filesystem and dropping a capability need root")
def test_a_socket_on_a_read_only_or_unwritable_directory_is_refused_in_one_line(short_tmp: str) -> None:
    readonly, closed = Path(short_tmp) / "ro", Path(short_tmp) / "closed"
    readonly.mkdir()
    closed.mkdir()
    os.chown(closed, 65534, 65534)  # someone else's directory, mode 0755
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(readonly)], check=True)
    try:
        result = run("serve", "--socket", f"{readonly}/s.sock", "--backend", f"builtin:{short_tmp}/v")
        assert (result.returncode, result.stderr) == (2, f"chaosvol: cannot listen on {readonly}/s.sock: Read-only file system\n")
        result = run("serve", "--socket", f"{short_tmp}/s.sock", "--backend", f"builtin:{readonly}/v")
        assert result.returncode == 2 and "Read-only file system" in result.stderr and "Traceback" not in result.stderr
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    # root without CAP_DAC_OVERRIDE is held to the directory's mode, as any other user
    unprivileged = ["setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override"]
    result = subprocess.run([*unprivileged, *CHAOSVOL, "serve", "--socket", f"{closed}/s.sock", "--backend", f"builtin:{short_tmp}/v"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"chaosvol: cannot listen on {closed}/s.sock: Permission denied: this user may not create it there"), result.stderr


def test_a_log_that_is_not_chaosvols_cut_short_or_from_a_future_schema_is_refused_by_every_tool(short_tmp: str) -> None:
    header = '{"kind":"header","schema":2,"chaosvol":"0.1.0","t":"2026-12-06T10:00:00.000000Z","seed":1,"profile":{"source":"p","sha256":null,"rules":0},"name":null,"socket":null,"backend":null}\n'
    call_line = ('{"t":"2026-12-06T10:00:00.100000Z","seq":1,"conn":1,"op":"List","volume":null,"mount_id":null,"rule":null,'
                 '"action":null,"rule_index":null,"decision":null,"forwarded":true,"backend":{"status":200,"err":null},'
                 '"reply":{"status":200,"err":null},"ms":0.2,"retry":false,"outcome":"answered","injected":false,"opts":null,"held":null}\n')
    cases = {
        "other.jsonl": ('{"level":"info","msg":"started"}\n', "other.jsonl:1: not a chaosvol event: it has no seq and op"),
        "cut.jsonl": (header + call_line[:50], "cut.jsonl:2: the last line is cut short"),
        "future.jsonl": (header.replace('"schema":2', '"schema":9') + call_line, "future.jsonl:1: written by chaosvol 0.1.0 in event schema 9"),
        "binary.jsonl": ("\udcff", "binary.jsonl: not an event log: not UTF-8 text"),
    }
    for name, (text, says) in cases.items():
        path = Path(short_tmp) / name
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        for command in (["replay", str(path)], ["report", str(path)], ["audit", "--backend", f"builtin:{short_tmp}/v", "--events", str(path)]):
            result = run(*command)
            assert result.returncode == 2 and result.stderr.startswith(f"chaosvol: {Path(short_tmp) / says}"), (command, result.stderr)
            assert len(result.stderr.splitlines()) == 1, result.stderr


def test_replay_names_what_it_cannot_reproduce_and_exits_1(short_tmp: str) -> None:
    # A log of event schema 1 (before decisions were recorded) with a delay, and no --profile.
    events = Path(short_tmp) / "old.jsonl"
    events.write_text(
        '{"t":"2026-11-23T07:30:00.100000Z","seq":1,"conn":1,"op":"Remove","volume":"v1","mount_id":null,"rule":"drop-removes",'
        '"action":"drop","forwarded":false,"backend":null,"reply":{"status":200,"err":null},"ms":0.1,"retry":false,'
        '"outcome":"answered","injected":true,"opts":null,"held":null}\n'
        '{"t":"2026-11-23T07:30:00.200000Z","seq":2,"conn":1,"op":"Mount","volume":"v1","mount_id":null,"rule":"slow-mounts",'
        '"action":"delay","forwarded":true,"backend":{"status":200,"err":null},"reply":{"status":200,"err":null},"ms":5000.1,'
        '"retry":false,"outcome":"answered","injected":true,"opts":null,"held":null}\n'
    )
    result = run("replay", str(events), "-o", f"{short_tmp}/r.yaml")
    assert result.returncode == 1, result.stderr
    assert ("chaosvol replay: cannot reproduce seq 2: Mount v1: delay needs options a schema 1 log does not keep; "
            "pass the run's profile with --profile") in result.stderr
    assert "1 faulted call(s) could not be reproduced" in result.stderr
    assert run("check", f"{short_tmp}/r.yaml").returncode == 0  # the rest is written, and loads
    again = run("replay", str(events), "--profile", "slow-mounts", "-o", f"{short_tmp}/r2.yaml")
    assert again.returncode == 0, again.stderr


def test_the_daemon_is_dockerd_or_podman_never_both_and_an_empty_podman_command_is_refused(tmp_path: Path) -> None:
    workload = ("--", "true")
    for command, tail in ((["audit"], ()), (["sweep", "--op", "Remove", "--action", "drop"], workload), (["explore", "-o", str(tmp_path / "out")], workload)):
        both = run(*command, "--docker-host", "unix:///nowhere.sock", "--podman", "podman", *tail)
        assert both.returncode == 2 and "not allowed with argument" in both.stderr, both.stderr
        empty = run(*command, "--podman", "", *tail)
        assert empty.returncode == 2, empty.stderr
        assert empty.stderr.strip().endswith("--podman: the command is empty (give podman, or podman with its global options)"), empty.stderr
        assert "Traceback" not in empty.stderr


def test_sweep_and_explore_say_at_once_when_the_daemon_to_clean_cannot_be_reached(tmp_path: Path) -> None:
    # --no-audit with a named dockerd: the runs would be cleaned in it, so it must be there.
    for command in (["sweep", "--op", "Remove", "--action", "drop"], ["explore", "-o", str(tmp_path / "out")]):
        result = run(*command, "--socket", str(tmp_path / "p.sock"), "--no-audit", "--docker-host", "unix:///nowhere.sock", "--", "true")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines()[-1] == "chaosvol: cannot reach dockerd at unix:///nowhere.sock: No such file or directory"
        assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
