"""`chaosvol audit --json` as a user runs it, for the end-to-end tests and the differential check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


class AuditFailed(RuntimeError):
    """The audit could not judge (exit 2, or an exit status that disagrees with its findings)."""


def run_audit(docker_host: str, driver: str, backend_root: Path, events: Path, *, timeout: float = 180) -> list[dict[str, Any]]:
    """The findings of `chaosvol audit --json` against the built-in backend in `backend_root`."""
    result = subprocess.run(
        [sys.executable, "-m", "chaosvol", "audit", "--docker-host", docker_host, "--driver", driver,
         "--backend", f"builtin:{backend_root}", "--events", str(events), "--json"],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode not in (0, 1):
        raise AuditFailed(f"audit exited {result.returncode}: {result.stderr}")
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    if (result.returncode == 1) != bool(findings):
        raise AuditFailed(f"audit exited {result.returncode} with {len(findings)} findings")
    return findings
