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


def load(page: Path, width: int = 1400) -> tuple[str, str]:
    """The DOM after the page's scripts ran in a window `width` pixels wide, and the browser's
    console output."""
    with tempfile.TemporaryDirectory(prefix="cvchr") as profile:
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--window-size={width},900", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    console = "\n".join(line for line in result.stderr.splitlines() if ":CONSOLE" in line)
    return result.stdout, console


def test_the_timeline_renders_every_call_without_script_errors(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(dict(r.raw)) + "\n" for r in RECORDS))
    page = tmp_path / "report.html"
    made = subprocess.run([sys.executable, "-m", "chaosvol", "report", str(events), "--html", str(page)],
                          capture_output=True, text=True, timeout=60, check=False)
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


def test_a_long_error_is_cut_in_its_cell_and_the_time_line_stays_on_screen_at_1400_px(tmp_path: Path) -> None:
    from chaosvol.tools.report import render_html
    from tests.unit.test_report import event

    long_error = "remove v1: " + "unlinkat /var/lib/plugin/volumes/v1/_data/some/deep/file: device or resource busy; " * 6
    records = [*RECORDS, event(5, "Remove", 3.0, backend={"status": 500, "err": long_error}, reply={"status": 500, "err": long_error})]
    # Measured in the page after it rendered: the table's right edge and the last row's cells.
    probe = """<script>
const table = document.querySelector("table"), row = document.querySelector('tr[data-seq="5"]');
document.body.dataset.tableRight = Math.round(table.getBoundingClientRect().right);
document.body.dataset.scrollWidth = document.documentElement.scrollWidth;
document.body.dataset.barRight = Math.round(row.lastElementChild.getBoundingClientRect().right);
document.body.dataset.rowClass = row.className;
document.body.dataset.fullError = (row.children[7].firstElementChild || row.children[7]).title.length;
</script></body>"""
    page = tmp_path / "long.html"
    page.write_text(render_html(records, "long").replace("</body>", probe))
    dom, console = load(page, width=1400)
    assert "Uncaught" not in console, console
    measured = dict(re.findall(r'data-(table-right|scroll-width|bar-right|row-class|full-error)="([^"]*)"', dom))
    assert int(measured["scroll-width"]) <= 1400 and int(measured["table-right"]) <= 1400, measured
    assert int(measured["bar-right"]) <= 1400, measured  # the ms and time-line columns are on screen
    assert measured["row-class"] == "real-failure"  # the backend answered 500: a real failure
    assert int(measured["full-error"]) == len(f"500 {long_error}")  # the whole text, on hover
