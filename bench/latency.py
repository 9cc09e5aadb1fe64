"""Pass-through cost of one call at a time, measured from a separate client process.

Three paths, each a separate server process started from the CLI:

  direct    the built-in backend served alone (`chaosvol backend`)
  proxy     `chaosvol serve --backend unix://<direct>` in front of it (no profile)
  inproc    `chaosvol serve --backend builtin:DIR` (the default: backend in process)

The load generator (bench/loadgen.py) sends dockerd's exact Get request on one keep-alive
connection, one call at a time; this prints the median and p99 latency per path and the proxy's
added latency (proxy - direct). bench/run.py is the full side-by-side benchmark.

Usage: .venv/bin/python bench/latency.py [--calls N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CHAOSVOL, load, percentile, start, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvb", dir="/tmp") as directory:
        direct, proxy, inproc = f"{directory}/d.sock", f"{directory}/p.sock", f"{directory}/i.sock"
        quiet = ["--log-level", "warning"]
        processes = [start([*CHAOSVOL, "backend", "--socket", direct, "--root", f"{directory}/d", *quiet], direct, "backend")]
        try:
            processes.append(start([*CHAOSVOL, "serve", "--socket", proxy, "--backend", f"unix://{direct}", *quiet], proxy, "proxy"))
            processes.append(start([*CHAOSVOL, "serve", "--socket", inproc, "--backend", f"builtin:{directory}/i", *quiet], inproc, "proxy"))
            results = {}
            for name, sock in (("direct", direct), ("proxy", proxy), ("inproc", inproc)):
                load(sock, "--calls", "500")  # warm up
                latencies = load(sock, "--calls", str(options.calls))["latencies_ms"]
                results[name] = (statistics.median(latencies), percentile(latencies, 0.99))
        finally:
            for process in reversed(processes):
                stop(process)
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {options.calls} sequential Get calls per path")
    print(f"{'path':<8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in results.items():
        print(f"{name:<8} {p50:8.3f} {p99:8.3f}")
    added = results["proxy"][0] - results["direct"][0], results["proxy"][1] - results["direct"][1]
    print(f"added by the proxy (proxy - direct): p50 {added[0]:.3f} ms, p99 {added[1]:.3f} ms")


if __name__ == "__main__":
    main()
