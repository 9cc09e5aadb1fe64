"""The HTML timeline in a real headless browser (Debian's chromium): it loads without script
errors and shows every call. In CI a missing chromium is a failure, never a skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.policy import unavailable
from tests.unit.test_report import RECORDS


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("chromium is not installed (Debian: apt-get install chromium)")
    return found


def load(page: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and the browser's console output."""
    with tempfile.TemporaryDirectory(prefix="cvchr") as profile:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    console = "\n".join(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout, console


def test_the_timeline_renders_every_call_without_script_errors(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    page = tmp_path / "report.html"
    made = subprocess.run([sys.executable, "-m", "chaosvol", "report", str(events), "--html", str(page)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "4 calls, 1 with an injected fault" in made.stdout
    dom, console = load(page)
    assert "Uncaught" not in console, console
    assert re.search(r'data-rendered="4"', dom)
    assert 'class="injected" data-seq="2"' in dom or 'data-seq="2" class="injected"' in dom
    assert "drop-removes / drop" in dom and "no answer: backend realvol unavailable" in dom


def test_the_check_would_catch_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>notDefined();</script></body></html>")
    _, console = load(page)
    assert "Uncaught ReferenceError" in console
