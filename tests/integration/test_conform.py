"""`chaosvol conform`: the built-in backend passes every check; a backend with one bug fails the
check for that bug and no other; the requests are the daemons' own, byte for byte."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import junitparser
import pytest
import trio

from chaosvol.backends.directory import DirectoryBackend
from chaosvol.tools.conform.checks import CHECKS, latency_verdict
from chaosvol.tools.conform.report import Outcome, conform
from chaosvol.tools.conform.shapes import DOCKERD_20, DOCKERD_26, PODMAN, SHAPES, Shape
from tests.integration.test_cli import CHAOSVOL
from tests.support.broken import BUGS, BrokenBackend, serve

ALL = [spec.id for spec in CHECKS]


@asynccontextmanager
async def plugin(short_tmp: str, backend: DirectoryBackend) -> AsyncIterator[str]:
    sock = f"{short_tmp}/plugin.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, sock, backend)
        yield f"unix://{sock}"
        nursery.cancel_scope.cancel()


def statuses(outcome: Outcome) -> dict[str, str]:
    return {result.check: result.status for result in outcome.results}


@pytest.mark.parametrize("shape", [DOCKERD_20, DOCKERD_26, PODMAN], ids=lambda s: s.name)
async def test_the_builtin_backend_passes_every_check_for_every_daemon(short_tmp: str, shape: Shape) -> None:
    outcome = await conform(f"builtin:{short_tmp}/v", shape, ids=ALL)
    skipped = {"restart"} | ({"capabilities", "mount-refcount"} if shape is PODMAN else set())
    assert statuses(outcome) == {check: "SKIP" if check in skipped else "PASS" for check in ALL}, outcome.results
    assert outcome.left_behind == [] and os.listdir(f"{short_tmp}/v/volumes") == []


# The bugs whose check says WARN, not FAIL: the daemon copes, at a cost the message names.
WARNS = {"remove-while-mounted", "latency"}
# The shape each bug is checked with: a plugin refusing `"Opts": null` fails every Create dockerd
# 26 sends, so that bug is checked as dockerd 20.10 talks (and `{}` as 26 does).
SHAPE_FOR = {"create-opts-null": DOCKERD_20}


@pytest.mark.parametrize("bug", BUGS)
async def test_each_check_fails_on_its_bug_and_only_on_it(short_tmp: str, bug: str) -> None:
    async with plugin(short_tmp, BrokenBackend(f"{short_tmp}/v", bug)) as address:
        with trio.fail_after(120):
            outcome = await conform(address, SHAPE_FOR.get(bug, DOCKERD_26), ids=ALL, opts={"size": "1"})
    found = {check: status for check, status in statuses(outcome).items() if status in ("FAIL", "WARN")}
    assert found == {bug: "WARN" if bug in WARNS else "FAIL"}, [str(r) for r in outcome.results if r.status != "PASS"]


def test_latency_fails_past_dockerds_timeout_and_warns_past_podmans() -> None:
    from chaosvol.core.protocol import Operation

    assert latency_verdict({Operation.GET: [0.01, 61.0]}, "dockerd").status == "FAIL"
    assert latency_verdict({Operation.CREATE: [0.01, 61.0]}, "dockerd").status == "WARN"  # Create has 120 s
    assert latency_verdict({Operation.CREATE: [0.01, 6.0]}, "podman").status == "FAIL"
    assert latency_verdict({Operation.CREATE: [0.01, 0.2]}, "podman").status == "PASS"


async def capture(short_tmp: str, shape: Shape) -> list[bytes]:
    """The raw requests conform sends for create-get-list, as a plugin receives them."""
    sock_path = f"{short_tmp}/raw.sock"
    received: list[bytes] = []
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listener.bind(sock_path)
    listener.listen(8)

    async def serve_one(conn: trio.socket.SocketType) -> None:
        with conn:
            buffer = b""
            while True:
                data = await conn.recv(65536)
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                    if len(rest) < length:
                        break
                    received.append(head + b"\r\n\r\n" + rest[:length])
                    buffer = rest[length:]
                    target = head.split(b" ")[1]
                    body = {b"/Plugin.Activate": b'{"Implements":["VolumeDriver"]}', b"/VolumeDriver.List": b'{"Volumes":[]}'}.get(
                        target, b'{"Err":""}')
                    await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    async def accept(nursery: trio.Nursery) -> None:
        while True:
            conn, _ = await listener.accept()
            nursery.start_soon(serve_one, conn)

    with listener:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept, nursery)
            await conform(f"unix://{sock_path}", shape, ids=["create-get-list"], prefix="cv")
            nursery.cancel_scope.cancel()
    return received


async def test_requests_are_each_daemons_own_bytes(short_tmp: str) -> None:
    for sub in ("20", "26", "p"):
        os.mkdir(f"{short_tmp}/{sub}")
    dockerd20 = await capture(f"{short_tmp}/20", DOCKERD_20)
    dockerd26 = await capture(f"{short_tmp}/26", DOCKERD_26)
    podman = await capture(f"{short_tmp}/p", PODMAN)
    assert dockerd20[0] == b"POST /Plugin.Activate HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n" \
        b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n"  # protocol.md 1, measured on 20.10
    assert dockerd20[1] == b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 30\r\n" \
        b'Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n{"Name":"cv-1-cgl","Opts":{}}\n'
    assert dockerd26[1].startswith(b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin.moby.localhost\r\n")
    assert dockerd26[1].endswith(b'\r\n\r\n{"Name":"cv-1-cgl","Opts":null}\n')
    assert podman[1] == b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 19\r\n" \
        b'Content-Type: application/vnd.docker.plugins.v1.1+json\r\n\r\n{"Name":"cv-1-cgl"}'  # podman-behaviour.md 2
    podman_list = next(r for r in podman if r.startswith(b"POST /VolumeDriver.List"))
    assert podman_list.endswith(b"Content-Length: 0\r\nContent-Type: application/vnd.docker.plugins.v1.1+json\r\n\r\n")
    assert next(r for r in dockerd20 if r.startswith(b"POST /VolumeDriver.List")).endswith(b"\r\n\r\n{}\n")


def junit_cases(path: Path) -> list[junitparser.TestCase]:
    """The testcases of a JUnit file whose root is one <testsuite>, as junitparser reads it."""
    document = junitparser.JUnitXml.fromfile(str(path))
    suites = [document] if isinstance(document, junitparser.TestSuite) else list(document)
    (suite,) = suites
    return list(suite)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CHAOSVOL, "conform", *args], capture_output=True, text=True, timeout=300, check=False)


def test_the_cli_prints_a_line_per_check_a_summary_and_valid_junit(short_tmp: str) -> None:
    junit = Path(short_tmp) / "conform.xml"
    result = run("--backend", f"builtin:{short_tmp}/v", "--only", "activate,names,restart", "--junit", str(junit))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["PASS activate", "PASS names", "SKIP restart"]
    assert lines[-1] == "2 passed, 0 failed, 0 warnings, 1 skipped"
    assert "[1/3] activate" in result.stderr  # progress
    cases = {case.name: case for case in junit_cases(junit)}
    assert set(cases) == {"activate", "names", "restart"}
    assert cases["activate"].is_passed and cases["restart"].is_skipped


async def test_a_failing_plugin_exits_1_and_junit_carries_the_failure(short_tmp: str) -> None:
    async with plugin(short_tmp, BrokenBackend(f"{short_tmp}/v", "names")) as address:
        junit = Path(short_tmp) / "conform.xml"
        result = await trio.to_thread.run_sync(lambda: run("--backend", address, "--only", "names", "--junit", str(junit), "--json"))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["summary"]["fail"] == 1 and report["results"][0]["check"] == "names"
    (case,) = junit_cases(junit)
    assert not case.is_passed and "'..' can reach outside" in case.result[0].message


def test_nothing_to_check_or_a_bad_id_exits_2_in_one_line(short_tmp: str) -> None:
    absent = run("--backend", f"unix://{short_tmp}/absent.sock")
    assert absent.returncode == 2 and absent.stderr.splitlines()[-1].startswith("chaosvol conform: cannot check: unix://")
    unknown = run("--backend", f"builtin:{short_tmp}/v", "--only", "activat")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("chaosvol: no check named 'activat'; the checks are: activate, capabilities")


def test_restart_keeps_volumes_with_a_durable_plugin_and_fails_with_one_that_forgets(short_tmp: str) -> None:
    sock = f"{short_tmp}/b.sock"
    pidfile = Path(short_tmp) / "pid"

    def start(root: str) -> str:
        return (f"{sys.executable} -m chaosvol backend --socket {sock} --root {root} --log-level error "
                f">/dev/null 2>&1 & echo $! > {pidfile}")

    def restart(root: str) -> str:  # stop the running one, start another on the same socket
        return f"kill $(cat {pidfile}) && while [ -e {sock} ]; do sleep 0.1; done; {start(root)}"

    subprocess.run(["sh", "-c", start(f"{short_tmp}/durable")], check=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kept = run("--backend", f"unix://{sock}", "--only", "restart", "--restart-cmd", restart(f"{short_tmp}/durable"))
        assert kept.returncode == 0 and kept.stdout.startswith("PASS restart:"), kept.stdout + kept.stderr
        lost = run("--backend", f"unix://{sock}", "--only", "restart", "--restart-cmd", restart(f"{short_tmp}/fresh"))
        assert lost.returncode == 1 and lost.stdout.startswith("FAIL restart: after the restart List has no "), lost.stdout
    finally:
        subprocess.run(["sh", "-c", f"kill $(cat {pidfile})"], check=False)


def test_every_daemon_shape_is_a_choice_of_the_cli() -> None:
    help_text = run("--help").stdout
    assert all(name in help_text for name in SHAPES) and all(spec.id in help_text for spec in CHECKS)
