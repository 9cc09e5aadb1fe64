"""The audit against the truth: random workloads under random faults on a real dockerd (each
build), the audit's verdict first, then dockerd stopped and its volume database read with the
backend's files (tests/support/differential.py, run as a user runs it: in its own mount
namespace). Every volume must agree. CI runs a fixed sample and one fresh seed, printed for a
rerun:

    .venv/bin/python -m tests.support.differential --dockerd 26 --only SEED
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DOCKERDS
from tests.support.differential import Outcome

REPO = Path(__file__).resolve().parents[2]
FIXED = range(1, 11)


@pytest.mark.parametrize("build", DOCKERDS, ids=[f"dockerd{b}" for b in DOCKERDS])
def test_the_audit_agrees_with_dockerds_database_and_the_backend_on_every_volume(build: str, daemons: Any, tmp_path: Path) -> None:
    daemons.get(build)  # this build can run here (or the reason it cannot)
    fresh = secrets.randbelow(1_000_000) + 1000
    print(f"dockerd {build}: fresh seed {fresh} (rerun: python -m tests.support.differential --dockerd {build} --only {fresh})")
    seeds = [arg for seed in [*FIXED, fresh] for arg in ("--only", str(seed))]
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.differential", "--dockerd", build, *seeds, "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    print(result.stdout, result.stderr[-3000:])
    fields = {f for f in Outcome.__dataclass_fields__}
    outcomes = [Outcome(**{k: v for k, v in json.loads(line).items() if k in fields}) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(outcomes) == 11
    broken = {o.seed: o.error for o in outcomes if o.error}
    assert not broken, broken
    wrong = {o.seed: o.disagreements for o in outcomes if o.disagreements}
    assert not wrong, f"the audit and the truth disagree (seed: volume: (audit, truth)): {wrong}"
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(len(o.truth) for o in outcomes) >= 30  # every run judged its volumes
    assert any(kinds for o in outcomes for kinds in o.truth.values()), "no run left an inconsistency: the sample proves nothing"
