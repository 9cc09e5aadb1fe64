"""The suite's policy for what a machine lacks: in CI (CI=true) it is a failure, never a skip;
elsewhere the test is skipped with the reason shown."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because `reason` keeps this test from running."""
    if IN_CI:
        pytest.fail(f"{reason}; in CI this must run (.ci/run installs and starts what the tests need)")
    pytest.skip(reason)
