"""chaosvol's benchmark: what the proxy costs, side by side with the backend alone and with socat.

Paths, all in one run, all in front of the same fast backend (bench/fastbackend.py):

  direct     the backend itself
  socat      socat UNIX-LISTEN:...,fork UNIX-CONNECT:...  (a plain byte relay)
  chaosvol   chaosvol serve in pass-through
  rules100   chaosvol with 100 rules, none of which fires
  events     chaosvol writing the event log to a file

Figures: throughput at 1, 8 and 64 connections; added latency at 8 connections; the cost of 100
rules and of the event log; 1,000 concurrent calls delayed 100 ms; a List of 10,000 volumes;
memory growth between 20,000 and 200,000 calls, and with 1,000 calls in flight; and, against a
real dockerd, 100 x (volume create + volume rm) through chaosvol vs the built-in backend alone.

Usage (root, for the dockerd figure):
  .venv/bin/python bench/run.py [--quick] [--out bench/results.json] [--plot bench/latency-cdf.png]

The dockerd figure always uses a private dockerd started for it: a daemon keeps every legacy
plugin it has used, and once the benchmark's plugins are gone each of them would cost 15 s in
every later `docker volume ls` on a daemon that outlived the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CHAOSVOL = [PYTHON, "-m", "chaosvol"]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def wait_for_socket(path: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not start")
        time.sleep(0.02)


def start(command: list[str], sock: str, what: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_socket(sock, process, what)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(sock: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([PYTHON, str(HERE / "loadgen.py"), sock, *args], capture_output=True, text=True, check=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))]


def chaosvol_serve(sock: str, backend: str, *extra: str) -> subprocess.Popen[bytes]:
    return start([*CHAOSVOL, "serve", "--socket", sock, "--backend", backend, "--log-level", "warning", *extra], sock, "chaosvol")


def hundred_rules(path: Path) -> None:
    lines = ["version: 1", "rules:"]
    for i in range(100):
        op = ("Get", "Remove", "Mount", "Create")[i % 4]
        lines.append(f"  - {{name: r{i}, match: {{op: {op}, volume: 'never-{i}-*'}}, action: error}}")
    path.write_text("\n".join(lines) + "\n")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def paths(work: Path, pids: dict[str, int]) -> Iterator[dict[str, str]]:
    """The paths' sockets; `pids` gets the chaosvol processes' pids."""
    backend = f"{work}/backend.sock"
    processes = [start([PYTHON, str(HERE / "fastbackend.py"), backend], backend, "the fast backend")]
    try:
        socat = shutil.which("socat")
        if socat is None:
            raise SystemExit("bench: socat is not installed (Debian: apt-get install socat)")
        sockets = {"direct": backend}
        sockets["socat"] = f"{work}/socat.sock"
        processes.append(start([socat, f"UNIX-LISTEN:{sockets['socat']},fork", f"UNIX-CONNECT:{backend}"], sockets["socat"], "socat"))
        sockets["chaosvol"] = f"{work}/cv.sock"
        processes.append(chaosvol_serve(sockets["chaosvol"], f"unix://{backend}"))
        hundred_rules(work / "rules100.yaml")
        sockets["rules100"] = f"{work}/r100.sock"
        processes.append(chaosvol_serve(sockets["rules100"], f"unix://{backend}", "--profile", str(work / "rules100.yaml")))
        sockets["events"] = f"{work}/ev.sock"
        processes.append(chaosvol_serve(sockets["events"], f"unix://{backend}", "--events", str(work / "events.jsonl")))
        pids.update(chaosvol=processes[2].pid, rules100=processes[3].pid, events=processes[4].pid)
        yield sockets
    finally:
        for process in reversed(processes):
            stop(process)


def throughput_figures(
    sockets: dict[str, str], pids: dict[str, int], seconds: float, rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Calls per second of each path at 1, 8 and 64 connections: `rounds` runs of each, the paths
    taking turns (one run of each after the other moved by 10 % between the first and the last),
    the median kept; latencies at 8 connections from all rounds; and at 8 connections the CPU
    time each chaosvol process spent per call, which moves much less than throughput when the
    machine is shared."""
    figures: dict[str, dict[str, float]] = {}
    latencies: dict[str, list[float]] = {}
    for connections in (1, 8, 64):
        names = [name for name in sockets if connections == 8 or name not in ("rules100", "events")]
        rates: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [0.0, 0.0] for name in pids}  # seconds, calls
        for name in names:
            load(sockets[name], "--connections", str(connections), "--seconds", str(min(seconds, 0.3)))  # warm up
        for _ in range(rounds):
            for name in names:
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                result = load(sockets[name], "--connections", str(connections), "--seconds", str(seconds / rounds))
                rates[name].append(result["calls"] / result["seconds"])
                if connections == 8:
                    latencies.setdefault(name, []).extend(result["latencies_ms"])
                    if name in pids:
                        cpu[name][0] += cpu_seconds(pids[name]) - before
                        cpu[name][1] += result["calls"]
        for name in names:
            rate = statistics.median(rates[name])
            figures.setdefault(name, {})[f"calls_per_s_at_{connections}"] = round(rate, 1)
            if connections == 8:
                figures[name]["p50_ms_at_8"] = round(statistics.median(latencies[name]), 4)
                figures[name]["p99_ms_at_8"] = round(percentile(latencies[name], 0.99), 4)
                if name in pids:
                    figures[name]["cpu_us_per_call_at_8"] = round(cpu[name][0] / max(cpu[name][1], 1) * 1e6, 1)
            log(f"{name:<9} {connections:>2} connections: {rate:9.0f} calls/s (median of {rounds})")
    return figures, latencies


def delayed_figure(work: Path, backend: str, calls: int) -> dict[str, float]:
    """`calls` calls sent at once, each delayed 100 ms; and, for scale, the same burst through a
    proxy with no rule: most of the error is the time the proxy takes to get through the burst,
    which the delay cannot hide."""
    profile = work / "delay.yaml"
    profile.write_text("version: 1\nrules:\n  - {match: {op: Get}, action: {delay: {duration: 100ms}}}\n")
    results = {}
    for name, extra in (("delayed", ["--profile", str(profile)]), ("undelayed", [])):
        sock = f"{work}/{name}.sock"
        process = chaosvol_serve(sock, f"unix://{backend}", *extra)
        try:
            results[name] = load(sock, "--connections", str(calls), "--once")
        finally:
            stop(process)
    errors = [abs(latency - 100.0) for latency in results["delayed"]["latencies_ms"]]
    return {"calls": calls, "answered": results["delayed"]["calls"], "p99_abs_error_ms": round(percentile(errors, 0.99), 3),
            "max_abs_error_ms": round(max(errors), 3),
            "undelayed_p99_ms": round(percentile(results["undelayed"]["latencies_ms"], 0.99), 3)}


def list_figure(sockets: dict[str, str], calls: int) -> dict[str, float]:
    """Median time of one List, the two paths measured in alternating rounds (a single round of
    each moved by a factor of two between runs)."""
    latencies: dict[str, list[float]] = {"direct": [], "chaosvol": []}
    for name in latencies:
        load(sockets[name], "--op", "list", "--calls", "3")
    for _ in range(5):
        for name, values in latencies.items():
            values.extend(load(sockets[name], "--op", "list", "--calls", str(max(1, calls // 5)))["latencies_ms"])
    times = {name: statistics.median(values) for name, values in latencies.items()}
    return {"direct_ms": round(times["direct"], 3), "chaosvol_ms": round(times["chaosvol"], 3),
            "ratio": round(times["chaosvol"] / times["direct"], 3)}


def memory_figure(work: Path, backend: str, small: int, large: int, held: int) -> dict[str, float]:
    sock = f"{work}/mem.sock"
    process = chaosvol_serve(sock, f"unix://{backend}")
    try:
        load(sock, "--connections", "8", "--calls", str(small))
        after_small = rss_mb(process.pid)
        load(sock, "--connections", "8", "--calls", str(large - small))
        after_large = rss_mb(process.pid)
    finally:
        stop(process)
    profile = work / "hold.yaml"
    profile.write_text("version: 1\nrules:\n  - {match: {op: Get}, action: {delay: {duration: 3s}}}\n")
    sock = f"{work}/held.sock"
    process = chaosvol_serve(sock, f"unix://{backend}", "--profile", str(profile))
    try:
        idle = rss_mb(process.pid)
        loader = subprocess.Popen([PYTHON, str(HERE / "loadgen.py"), sock, "--connections", str(held), "--once"], stdout=subprocess.DEVNULL)
        time.sleep(2.0)
        with_held = rss_mb(process.pid)
        loader.wait(60)
    finally:
        stop(process)
    return {"rss_after_small_mb": round(after_small, 2), "rss_after_large_mb": round(after_large, 2),
            "growth_mb": round(after_large - after_small, 2), "small_calls": small, "large_calls": large,
            "rss_idle_mb": round(idle, 2), "rss_with_delayed_mb": round(with_held, 2), "delayed_calls": held}


def dockerd_figure(work: Path, rounds: int) -> dict[str, float]:
    from chaosvol.testing.private_dockerd import PrivateDockerd

    daemon = PrivateDockerd.start()
    tag = secrets.token_hex(3)
    direct_name, proxy_name = f"cvb-direct-{tag}", f"cvb-proxy-{tag}"
    direct = start([*CHAOSVOL, "backend", "--name", direct_name, "--root", str(work / "direct")], f"/run/docker/plugins/{direct_name}.sock", "chaosvol backend")
    proxy = start([*CHAOSVOL, "serve", "--name", proxy_name, "--backend", f"builtin:{work / 'proxied'}"], f"/run/docker/plugins/{proxy_name}.sock", "chaosvol serve")
    try:
        paths = (("direct", direct_name), ("chaosvol", proxy_name))
        seconds = dict.fromkeys(("direct", "chaosvol"), 0.0)
        for _, name in paths:
            daemon.docker("volume", "create", "-d", name, f"warmup-{name}")
            daemon.docker("volume", "rm", f"warmup-{name}")
        for i in range(rounds):  # alternating, so that the machine's ups and downs hit both alike
            for label, name in paths:
                started = time.monotonic()
                daemon.docker("volume", "create", "-d", name, f"b{i}-{label}")
                daemon.docker("volume", "rm", f"b{i}-{label}")
                seconds[label] += time.monotonic() - started
        return {"rounds": rounds, "direct_s": round(seconds["direct"], 3), "chaosvol_s": round(seconds["chaosvol"], 3),
                "ratio": round(seconds["chaosvol"] / seconds["direct"], 3)}
    finally:
        daemon.stop()
        stop(proxy)
        stop(direct)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "cpu": model, "python": platform.python_version()}


def plot(latencies: dict[str, list[float]], out: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, values in latencies.items():
        ordered = sorted(values)
        axes.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    axes.set_xscale("log")
    axes.set_xlabel("latency per Get call at 8 connections (ms, log scale)")
    axes.set_ylabel("fraction of calls")
    axes.set_title("chaosvol benchmark: latency CDF by path")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    return True


def table(results: dict[str, Any]) -> str:
    t = results["throughput"]
    rows = [("figure", "result", "target", "met")]

    def row(figure: str, result: str, target: str, met: bool) -> None:
        rows.append((figure, result, target, "yes" if met else "NO"))

    for c in (1, 8, 64):
        key = f"calls_per_s_at_{c}"
        ratio = t["chaosvol"][key] / t["socat"][key]
        row(f"throughput at {c} connection{'s' if c > 1 else ''}", f"chaosvol {t['chaosvol'][key]:.0f}/s, socat {t['socat'][key]:.0f}/s, direct {t['direct'][key]:.0f}/s ({ratio:.2f} x socat)", ">= 0.8 x socat", ratio >= 0.8)
    p50 = t["chaosvol"]["p50_ms_at_8"] - t["direct"]["p50_ms_at_8"]
    p99 = t["chaosvol"]["p99_ms_at_8"] - t["direct"]["p99_ms_at_8"]
    row("added latency at 8 connections", f"p50 {p50:.3f} ms, p99 {p99:.3f} ms", "p99 <= 0.5 ms", p99 <= 0.5)
    cpu = ", ".join(f"{label} {t[name]['cpu_us_per_call_at_8']:.0f} us" for name, label in (("chaosvol", "pass-through"), ("rules100", "100 rules"), ("events", "event log")))
    row("chaosvol's CPU per call at 8 connections", cpu, "reported", True)
    for name, label in (("rules100", "100 non-firing rules"), ("events", "event log to a file")):
        loss = 1 - t[name]["calls_per_s_at_8"] / t["chaosvol"]["calls_per_s_at_8"]
        where = f"{loss * 100:.1f} % below" if loss >= 0 else f"{-loss * 100:.1f} % above"
        row(label, f"{t[name]['calls_per_s_at_8']:.0f}/s, {where} pass-through", "<= 10 % below", loss <= 0.10)
    d = results["delayed"]
    row(f"{d['calls']} concurrent calls delayed 100 ms", f"{d['answered']} answered, p99 error {d['p99_abs_error_ms']:.2f} ms (same burst undelayed: p99 {d['undelayed_p99_ms']:.1f} ms)", "all; p99 <= 5 ms", d["answered"] == d["calls"] and d["p99_abs_error_ms"] <= 5)
    li = results["list"]
    row("List of 10,000 volumes", f"chaosvol {li['chaosvol_ms']:.1f} ms, direct {li['direct_ms']:.1f} ms ({li['ratio']:.2f} x)", "<= 1.5 x direct", li["ratio"] <= 1.5)
    m = results["memory"]
    row(f"RSS growth {m['small_calls']:,} -> {m['large_calls']:,} calls", f"{m['growth_mb']:+.2f} MB ({m['rss_after_small_mb']:.1f} -> {m['rss_after_large_mb']:.1f} MB)", "<= 5 MB", m["growth_mb"] <= 5)
    row(f"RSS with {m['delayed_calls']:,} delayed calls", f"{m['rss_with_delayed_mb']:.1f} MB (idle {m['rss_idle_mb']:.1f} MB)", "reported", True)
    if "dockerd" in results:
        k = results["dockerd"]
        row(f"dockerd: {k['rounds']} x (create + rm)", f"chaosvol {k['chaosvol_s']:.2f} s, direct {k['direct_s']:.2f} s ({k['ratio']:.3f} x)", "<= 1.05 x", k["ratio"] <= 1.05)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every figure, small: under a minute (the test suite runs this)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="raw results as JSON")
    parser.add_argument("--plot", type=Path, default=HERE / "latency-cdf.png", help="latency CDF plot (PNG; needs matplotlib)")
    parser.add_argument("--no-dockerd", action="store_true", help="skip the real-dockerd figure")
    options = parser.parse_args()
    seconds = 0.5 if options.quick else 5.0
    results: dict[str, Any] = {"machine": machine(), "quick": options.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    log(f"{results['machine']['cores']} cores, {results['machine']['cpu']}, Python {results['machine']['python']}")
    with tempfile.TemporaryDirectory(prefix="cvbench", dir="/tmp") as directory:
        work = Path(directory)
        pids: dict[str, int] = {}
        with paths(work, pids) as sockets:
            results["throughput"], latencies = throughput_figures(sockets, pids, seconds, 1 if options.quick else 5)
            log("1,000 delayed calls")
            results["delayed"] = delayed_figure(work, sockets["direct"], 200 if options.quick else 1000)
            log("List of 10,000 volumes")
            results["list"] = list_figure(sockets, 5 if options.quick else 500)
            log("memory")
            results["memory"] = memory_figure(work, sockets["direct"], 2_000 if options.quick else 20_000, 20_000 if options.quick else 200_000, 200 if options.quick else 1000)
        if not options.no_dockerd:
            log("a real dockerd")
            results["dockerd"] = dockerd_figure(work, 5 if options.quick else 100)
    results["table"] = table(results)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    plotted = plot(latencies, options.plot)
    print(f"machine: {results['machine']['cores']} cores, {results['machine']['cpu']}, Python {results['machine']['python']}")
    print(results["table"])
    print(f"raw results: {options.out}" + (f"; latency CDF: {options.plot}" if plotted else ""))


if __name__ == "__main__":
    main()
