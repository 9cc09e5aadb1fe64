"""Instructions per pass-through call, counted by callgrind: what a change does to the cost of a
call, on a shared machine whose CPU times move by 20 % from one run to the next.

`chaosvol serve` runs under valgrind in front of bench/fastbackend.py twice, once for 300 calls
and once for 1,800 (bench/loadgen.py, 8 connections); the difference of the two totals over 1,500
is the cost of one call, start-up and shut-down cancelled out. About 3 minutes.

    .venv/bin/python bench/instructions.py [TREE ...]

Each TREE is a checkout to measure (default: this one), so that two commits can be compared in
one go: `git worktree add /tmp/before HEAD~5` and give both.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def wait_for(path: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"instructions: {path} never appeared")
        time.sleep(0.2)


def instructions(tree: Path, backend: str, work: Path, calls: int) -> int:
    """The instructions `chaosvol serve` (from `tree`) executed in all, serving `calls` calls."""
    sock, out = f"{work}/p-{calls}.sock", f"{work}/callgrind-{calls}.out"
    serve = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", PYTHON, "-m", "chaosvol", "serve", "--socket", sock,
         "--backend", f"unix://{backend}", "--log-level", "warning", "--no-control"],
        cwd=tree, stderr=subprocess.PIPE, text=True,
    )
    wait_for(sock)
    subprocess.run([PYTHON, str(HERE / "loadgen.py"), sock, "--connections", "8", "--calls", str(calls)], capture_output=True, check=True)
    serve.send_signal(signal.SIGTERM)
    _, err = serve.communicate(timeout=300)
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise SystemExit(f"instructions: no total from valgrind:\n{err[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path, default=[HERE.parent], metavar="TREE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvir") as directory:
        work = Path(directory)
        backend = f"{work}/backend.sock"
        fast = subprocess.Popen([PYTHON, str(HERE / "fastbackend.py"), backend])
        try:
            wait_for(backend)
            for tree in args.trees:
                few, many = instructions(tree, backend, work, 300), instructions(tree, backend, work, 1800)
                print(f"{tree}: {(many - few) / 1500:,.0f} instructions per pass-through call", flush=True)
        finally:
            fast.terminate()
            fast.wait(10)


if __name__ == "__main__":
    main()
