"""Testing policy for chaosvol.

* Tests prove behaviour a user sees. Each would fail without the behaviour it names.
* The core (engine, profile, wire, faults) is tested synchronously with plain calls; time is an
  argument, so the "clock" is the float a test passes.
* The shell runs on trio memory streams with `autojump_clock` whenever time is involved, so a
  40 s delay takes milliseconds and is asserted exactly, with no tolerance.
* Integration tests use real unix sockets in a short temporary directory (socket paths must fit
  in 107 bytes) and run the CLI as a subprocess; every I/O test has an absolute deadline.
* End-to-end tests talk to a real dockerd started by the suite (tests/e2e/conftest.py). Where
  dockerd cannot run they are skipped with the reason shown, except in CI (CI=true), where that
  is a failure: they never skip silently.
* Timing targets belong in the benchmark, not here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

pytest_plugins = ["pytester"]  # tests/*/test_pytest_plugin.py run a user's suite the way a user would


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A temporary directory with a short path, for unix sockets."""
    directory = tempfile.mkdtemp(prefix="cv", dir="/tmp")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"chaosvol tests; CI={os.environ.get('CI', '')!r} (in CI, a dockerd that cannot start fails the e2e tests)"


from hypothesis import settings as _hypothesis_settings

# Bounded in CI; `HYPOTHESIS_PROFILE=long scripts/test tests/shell/test_fuzz.py` runs the long fuzz.
_hypothesis_settings.register_profile("ci", max_examples=100, deadline=None)
_hypothesis_settings.register_profile("long", max_examples=20_000, deadline=None)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
