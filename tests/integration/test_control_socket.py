"""The control socket over a real unix socket, driven by `chaosvol ctl` as a user runs it:
answering at once with 500 calls held and with the backend hung, and owner-only."""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio
import trio.lowlevel

from chaosvol.backends import AnswerSink
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.protocol import PluginCall, PluginReply
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.service import serve_proxy
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from tests.support.builders import get, profile, remove, rule
from tests.support.fakes import DaemonClient

HELD = 500


@pytest.fixture
async def deadline() -> AsyncIterator[None]:
    with trio.fail_after(60):
        yield


async def ctl(control: str, *args: str) -> tuple[int, str, str, float]:
    """`chaosvol ctl --control PATH ARGS...`: exit status, stdout, stderr, seconds it took."""
    started = time.monotonic()
    done = await trio.run_process(
        [sys.executable, "-m", "chaosvol", "ctl", "--control", control, *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode(), time.monotonic() - started


async def start(nursery: trio.Nursery, short_tmp: str, backend: Any, *rules: dict[str, Any]) -> tuple[PluginServer, str, str]:
    sock, control = f"{short_tmp}/p.sock", f"{short_tmp}/p.ctl.sock"
    server: PluginServer = await nursery.start(serve_proxy, ProxyState(ServeSettings("p", sock, backend.name, control), backend, ChaosEngine(profile(*rules))))
    return server, sock, control


@pytest.mark.usefixtures("deadline")
async def test_ctl_round_trip_while_500_calls_are_held(short_tmp: str, nursery: trio.Nursery) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # both ends of every connection live here
    held = min(HELD, (hard - 200) // 2)
    print(f"{held} calls held (open-files limit {hard})")
    server, sock, control = await start(nursery, short_tmp, DirectoryBackend(f"{short_tmp}/vols"), rule("hold", op="Remove", name="park"))
    assert stat.S_IMODE(os.stat(control).st_mode) == 0o600
    answers: list[PluginReply] = []
    clients = []
    for _ in range(held):
        clients.append(DaemonClient(await trio.open_unix_socket(sock)))
        await trio.lowlevel.checkpoint()  # the server, in this same loop, accepts as we go: the backlog never fills

    async def call(client: DaemonClient, index: int) -> None:
        answers.append(await client.call(remove(f"v{index}")))

    async with trio.open_nursery() as calls:
        for index, client in enumerate(clients):
            calls.start_soon(call, client, index)
        code, out, _, _ = await ctl(control, "held", "--wait", "30s", "--count", str(held))
        assert code == 0 and len(out.splitlines()) == held + 1  # a header, then one line per call

        code, out, err, took = await ctl(control, "--json", "status")
        status = json.loads(out)
        assert (code, status["held"], status["in_flight"], status["calls"]) == (0, held, held, {"Remove": held}), err
        print(f"ctl status with {held} calls held: {took * 1000:.0f} ms (the ctl process included)")
        assert took < 10  # a generous bound: it answers from memory

        code, out, _, _ = await ctl(control, "rules")
        assert code == 0 and out.splitlines()[1].split() == ["park", "hold", "enabled", str(held), str(held)]
        code, out, _, _ = await ctl(control, "release", "--match", "op=Remove,volume=v1??")
        assert (code, out.splitlines()[0]) == (0, "released 100 call(s)")  # v100..v199
        code, out, _, _ = await ctl(control, "release", "--all")
        assert (code, out.splitlines()[0]) == (0, f"released {held - 100} call(s)")
    # Released, then forwarded: the backend answered each (it has no such volumes).
    assert len(answers) == held and all("no such volume" in (a.err or "") for a in answers)
    code, _, err, _ = await ctl(control, "release", "1")
    assert (code, err.strip()) == (2, "chaosvol ctl release: no held call has id 1; held now: none")
    for client in clients:
        await client.stream.aclose()
    server.shut_down()


class HungBackend:
    name = "hung"

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        await trio.sleep_forever()
        raise AssertionError

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def aclose(self) -> None:
        pass


@pytest.mark.usefixtures("deadline")
async def test_ctl_answers_while_the_backend_is_hung(short_tmp: str, nursery: trio.Nursery) -> None:
    server, sock, control = await start(nursery, short_tmp, HungBackend())
    clients = [DaemonClient(await trio.open_unix_socket(sock)) for _ in range(50)]
    async with trio.open_nursery() as calls:
        for client in clients:
            calls.start_soon(client.call, get("v"))
        while server.state.in_flight < 50:
            await trio.sleep(0.01)
        code, out, _, _ = await ctl(control, "status")
        assert code == 0 and "50 in flight" in out, out
        code, out, _, _ = await ctl(control, "events")
        assert (code, out) == (0, "")  # nothing has finished
        calls.cancel_scope.cancel()
    for client in clients:
        await client.stream.aclose()
    server.shut_down(grace=0)


async def test_ctl_without_a_proxy_says_so_and_exits_2(short_tmp: str) -> None:
    code, _, err, _ = await ctl(f"{short_tmp}/none.ctl.sock", "status")
    assert (code, err.strip()) == (2, f"chaosvol: no control socket at {short_tmp}/none.ctl.sock: is `chaosvol serve` running with that name?")


@pytest.mark.usefixtures("deadline")
async def test_ctl_load_refuses_a_bad_profile_with_check_s_message_and_keeps_the_old(short_tmp: str, nursery: trio.Nursery) -> None:
    server, _sock, control = await start(nursery, short_tmp, DirectoryBackend(f"{short_tmp}/vols"), rule("drop", op="Remove", name="d"))
    bad = f"{short_tmp}/bad.yaml"
    await trio.Path(bad).write_text("version: 1\nrules:\n  - match: {op: Remov}\n    action: drop\n")
    code, _, err, _ = await ctl(control, "load", bad)
    check = await trio.run_process([sys.executable, "-m", "chaosvol", "check", bad], capture_stderr=True, check=False)
    assert code == 2 and err == check.stderr.decode()
    assert server.state.engine.rule_names == ["d"]
    code, out, _, _ = await ctl(control, "load", "drop-removes")
    assert code == 0 and out.startswith("loaded ") and server.state.engine.rule_names != ["d"]
    server.shut_down()


@pytest.mark.usefixtures("deadline")
async def test_ctl_events_follow_prints_calls_as_they_happen(short_tmp: str, nursery: trio.Nursery) -> None:
    server, sock, control = await start(nursery, short_tmp, DirectoryBackend(f"{short_tmp}/vols"))
    command = [sys.executable, "-m", "chaosvol", "ctl", "--control", control, "events", "--follow"]
    process = await nursery.start(partial(trio.run_process, command, stdout=subprocess.PIPE, check=False))
    client = DaemonClient(await trio.open_unix_socket(sock))
    await trio.sleep(1)  # the follower is waiting now
    await client.call(get("v"))
    line = b""
    while not line.endswith(b"\n"):
        line += await process.stdout.receive_some(65536)
    assert json.loads(line)["op"] == "Get"
    process.terminate()
    await client.stream.aclose()
    server.shut_down()
