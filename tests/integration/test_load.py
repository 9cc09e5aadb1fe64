"""Load: thousands of connections and calls in flight at once, every one answered, and nothing
left behind afterwards (descriptors back to where they were, memory bounded). The proxy runs as
users run it, a separate process, so its descriptors and memory can be read from /proc."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import trio

from chaosvol.core.protocol import PluginReply
from tests.support.builders import get
from tests.support.fakes import DaemonClient


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_ten_thousand_delayed_calls_in_flight_are_all_answered_and_nothing_leaks(short_tmp: str) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    calls = min(10_000, hard - 500)
    sock, profile = f"{short_tmp}/p.sock", Path(short_tmp) / "p.yaml"
    # Long enough that the first call is still parked when the last one arrives, on a slow day.
    profile.write_text("version: 1\nrules:\n  - {match: {op: Get}, action: {delay: {duration: 20s}}}\n")
    proxy = await trio.to_thread.run_sync(partial(
        subprocess.Popen,
        [sys.executable, "-m", "chaosvol", "serve", "--socket", sock, "--backend", f"builtin:{short_tmp}/v",
         "--profile", str(profile), "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True,
    ))
    try:
        assert proxy.stderr is not None
        while "serving" not in proxy.stderr.readline():
            pass
        before_fds, before_rss = fds(proxy.pid), rss_mb(proxy.pid)
        answered = sent = 0
        peak: dict[str, float] = {"fds": 0.0, "rss": 0.0}

        async def one() -> None:
            nonlocal answered, sent
            for attempt in range(100):  # a full listen backlog is retried, as dockerd does
                stream = None
                try:
                    stream = await trio.open_unix_socket(sock)
                    client = DaemonClient(stream)
                    await client.stream.send_all(client.wire.request_bytes(get("v"), b""))
                    sent += 1
                    break
                except (BlockingIOError, trio.BrokenResourceError):
                    if stream is not None:
                        await stream.aclose()
                    # A unix connect into a full backlog fails with EAGAIN; trio may only notice
                    # at the first write (ENOTCONN).
                    await trio.sleep(0.01 * (attempt + 1))
            else:
                raise AssertionError("could not connect")
            async with stream:
                reply: PluginReply = await client.read_reply()
                answered += reply.status == 500  # the backend's honest "no such volume"

        started = time.monotonic()
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                for _ in range(calls):
                    nursery.start_soon(one)
                # Every call sent, then the proxy's descriptors sampled until it has accepted them
                # all (or the first delays end): the peak, whatever the machine's speed.
                while sent < calls:
                    await trio.sleep(0.1)
                while answered == 0 and peak["fds"] < calls:
                    peak = {"fds": max(peak["fds"], fds(proxy.pid)), "rss": max(peak["rss"], rss_mb(proxy.pid))}
                    await trio.sleep(0.1)
        took = time.monotonic() - started
        assert answered == calls
        await trio.sleep(0.5)
        after_fds, after_rss = fds(proxy.pid), rss_mb(proxy.pid)
        print(f"{calls} calls in flight: answered in {took:.1f}s; proxy fds {before_fds} -> {peak['fds']} -> {after_fds}, "
              f"RSS {before_rss:.1f} -> {peak['rss']:.1f} -> {after_rss:.1f} MB")
        assert peak["fds"] >= calls * 0.9  # they really were all open at once
        assert after_fds <= before_fds + 2  # every connection closed
        assert after_rss < before_rss + 200  # bounded; the figure is reported above
    finally:
        proxy.terminate()
        proxy.wait(20)
        if proxy.stderr is not None:
            proxy.stderr.close()
