"""The core never imports trio: it must stay pure, testable with plain calls."""

import subprocess
import sys

import pytest

CORE = [
    "chaosvol.protocol",
    "chaosvol.errors",
    "chaosvol.wire",
    "chaosvol.effects",
    "chaosvol.faults",
    "chaosvol.profile",
    "chaosvol.engine",
    "chaosvol.events",
    "chaosvol.durations",
]


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_not_import_trio(module: str) -> None:
    code = f"import sys, {module}; print('trio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
