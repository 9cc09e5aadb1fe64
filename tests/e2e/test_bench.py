"""The benchmark runs and produces every figure (not the targets: timing targets do not belong
in tests on a shared machine; bench/run.py prints them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.dockerd import PrivateDockerd

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def test_the_quick_benchmark_produces_every_figure_the_table_and_the_plot(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    # `dockerd` only makes sure one can run here: the benchmark starts its own, so that its
    # plugins, gone afterwards, never slow down the session's daemon.
    out, plot = tmp_path / "results.json", tmp_path / "cdf.png"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    for path in ("direct", "socat", "chaosvol"):
        assert {f"calls_per_s_at_{c}" for c in (1, 8, 64)} <= set(results["throughput"][path])
    assert {"rules100", "events"} <= set(results["throughput"])
    assert all(results["throughput"][path]["cpu_us_per_call_at_8"] > 0 for path in ("chaosvol", "rules100", "events"))
    assert results["delayed"]["answered"] == results["delayed"]["calls"] and results["delayed"]["undelayed_p99_ms"] > 0
    assert results["list"]["direct_ms"] > 0 and results["memory"]["growth_mb"] == results["memory"]["growth_mb"]
    assert results["dockerd"]["rounds"] == 5
    assert plot.read_bytes().startswith(b"\x89PNG")
    for figure in ("throughput at 64 connections", "added latency", "CPU per call", "100 non-firing rules", "event log to a file",
                   "delayed 100 ms", "List of 10,000 volumes", "RSS growth", "dockerd:"):
        assert figure in result.stdout
