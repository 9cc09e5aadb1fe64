"""`chaosvol report`: a run's event log as a summary a person can read, and an HTML timeline.

Pure: records in, text or one self-contained HTML page out (no external scripts, styles or
fonts, so it opens from a CI artifact with no network).
"""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from chaosvol.core.events import CallEvent, Seen
from chaosvol.faults import describe_action

FAULTS_SHOWN: Final = 40  # in the text summary; the HTML shows every one


@dataclass(frozen=True, slots=True)
class Latency:
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class Summary:
    calls: int
    by_operation: dict[str, int]
    fired_by_rule: dict[str, int]
    injected: int
    backend_failures: int  # real ones: nobody asked for them (no answer, or an error answer)
    retries: int
    outcomes: dict[str, int]
    latency_by_operation: dict[str, Latency] = field(default_factory=dict)
    backend_unreachable: int = 0  # of backend_failures: no answer at all (unreachable, cut, timed out)
    faults: tuple[str, ...] = ()  # each faulted call, as carried out, in arrival order

    def to_text(self) -> str:
        first = f"{self.calls} calls, {self.injected} with an injected fault, {self.backend_failures} real backend failures"
        if self.backend_failures:
            answered = self.backend_failures - self.backend_unreachable
            first += f" ({self.backend_unreachable} without an answer, {answered} answered with an error)"
        lines = [first]
        if self.retries:
            lines.append(f"{self.retries} empty-body retries from dockerd (after dropped connections)")
        lines.append("")
        width = max([len("operation"), *map(len, self.by_operation)]) + 2  # an unknown endpoint is a long name
        lines.append(f"{'operation':<{width}}{'calls':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>11}")
        for operation, count in sorted(self.by_operation.items(), key=lambda item: -item[1]):
            latency = self.latency_by_operation[operation]
            lines.append(f"{operation:<{width}}{count:>7}{latency.p50_ms:>10.2f}{latency.p99_ms:>10.2f}{latency.max_ms:>11.2f}")
        if self.fired_by_rule:
            lines.append("")
            lines.append("faults fired, by rule:")
            for rule, count in sorted(self.fired_by_rule.items(), key=lambda item: -item[1]):
                lines.append(f"  {rule:<32}{count:>6}")
        if self.faults:
            lines.append("")
            lines.append("each fault, as carried out:")
            shown = self.faults[:FAULTS_SHOWN]
            lines.extend(f"  {fault}" for fault in shown)
            if len(self.faults) > len(shown):
                lines.append(f"  ... and {len(self.faults) - len(shown)} more (chaosvol report --html shows them all)")
        unusual = {k: v for k, v in self.outcomes.items() if k != "answered"}
        if unusual:
            lines.append("")
            lines.append("calls not answered normally: " + ", ".join(f"{k} {v}" for k, v in sorted(unusual.items())))
        return "\n".join(lines) + "\n"


def summarize(records: Iterable[CallEvent]) -> Summary:
    records = list(records)
    by_operation: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    durations: dict[str, list[float]] = defaultdict(list)
    faults: list[str] = []
    injected = backend_failures = unreachable = retries = 0
    for record in sorted(records, key=lambda r: (r.t, r.seq)):
        operation = str(record.op)
        by_operation[operation] += 1
        outcomes[record.outcome] += 1
        durations[operation].append(record.ms)
        if record.rule:
            injected += 1
            fired[f"{record.rule} ({record.action})"] += 1
            faults.append(describe_fault(record))
        if backend_failed(record.backend):
            backend_failures += 1
            unreachable += record.backend is not None and record.backend.error is not None
        retries += record.retry
    latency = {op: _latency(values) for op, values in durations.items()}
    return Summary(
        len(records), dict(by_operation), dict(fired), injected, backend_failures, retries, dict(outcomes), latency, unreachable,
        tuple(faults),
    )


def describe_fault(record: CallEvent) -> str:
    """One faulted call as a person reads it: which call, which rule, and what exactly was done
    (the resolved actions of a schema 2 log; the action words of an older one)."""
    call = f"seq {record.seq} {record.op}" + (f" {record.volume}" if record.volume else "") + (" (retry)" if record.retry else "")
    return f"{call}: {record.rule}: {describe_done(record)}"


def describe_done(record: CallEvent) -> str:
    """What a rule did to a call: its resolved actions (schema 2), or its action words."""
    if record.decision is not None:
        done = "; ".join(describe_action(action.word, action.options) for action in record.decision)
    else:
        done = f"{record.action} (options not recorded: an event log of schema 1)"
    return done + (f", held until {record.held}" if record.held else "")


def backend_failed(backend: Seen | None) -> bool:
    """Whether the backend's part of a call failed: no answer (`error`), or an answer dockerd
    takes as a failure (a status other than 200, or a non-empty Err)."""
    return backend is not None and not backend.ok


def _latency(values: list[float]) -> Latency:
    ordered = sorted(values)
    p99 = ordered[max(0, int(len(ordered) * 0.99 + 0.5) - 1)]
    return Latency(len(ordered), statistics.median(ordered), p99, ordered[-1])


def render_html(records: Iterable[CallEvent], title: str) -> str:
    """One page: the summary, then every call on a time axis (dockerd -> proxy -> backend),
    injected faults highlighted with what exactly was done, filterable by volume to follow one
    volume's life line."""
    records = sorted(records, key=lambda r: (r.t, r.seq))
    summary = summarize(records)
    rows = [{**record.raw, "done": describe_done(record) if record.rule else None} for record in records]
    data = json.dumps(rows, separators=(",", ":")).replace("</", "<\\/")
    return _PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary.to_text()),
        data=data,
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>chaosvol report: {title}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}
table{{border-collapse:collapse;width:100%}}
th,td{{padding:2px 6px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap;font-size:13px}}
td .clip{{max-width:22em;overflow:hidden;text-overflow:ellipsis}}
tr.injected{{background:#fff0e0}} tr.real-failure{{background:#ffe0e0}}
td.bar{{width:40%}} .bar span{{display:block;height:10px;background:#6a8fd6;min-width:2px}}
tr.injected .bar span{{background:#e8892b}} tr.real-failure .bar span{{background:#d33}}
.legend span{{display:inline-block;padding:0 .5em;margin-right:.5em}}
</style></head>
<body>
<h1>chaosvol report: {title}</h1>
<pre id="summary">{summary}</pre>
<p class="legend"><span style="background:#fff0e0">injected fault</span><span style="background:#ffe0e0">real backend failure</span>
Follow one volume: <select id="volume"><option value="">all volumes</option></select></p>
<table><thead><tr><th>+s</th><th>seq</th><th>conn</th><th>op</th><th>volume</th><th>rule / action</th>
<th>backend</th><th>dockerd got</th><th>ms</th><th class="bar">time line</th></tr></thead>
<tbody id="calls"></tbody></table>
<script id="events" type="application/json">{data}</script>
<script>
"use strict";
const calls = JSON.parse(document.getElementById("events").textContent);
const start = calls.length ? Date.parse(calls[0].t) : 0;
const end = calls.reduce((m, c) => Math.max(m, Date.parse(c.t) + (c.ms || 0)), start + 1);
const span = Math.max(end - start, 1);
const body = document.getElementById("calls");
const picker = document.getElementById("volume");
function describe(answer) {{
  if (!answer) return "";
  if (answer.error) return "no answer: " + answer.error;
  return answer.status + (answer.err ? " " + answer.err : "");
}}
function failed(answer) {{
  return !!answer && ("error" in answer || (answer.status != null && answer.status !== 200) || !!answer.err);
}}
function render(volume) {{
  body.textContent = "";
  for (const c of calls) {{
    if (volume && c.volume !== volume) continue;
    const row = document.createElement("tr");
    row.dataset.seq = c.seq;
    if (c.injected) row.className = "injected";
    else if (failed(c.backend)) row.className = "real-failure";
    const offset = Date.parse(c.t) - start;
    const cells = [(offset / 1000).toFixed(3), c.seq, c.conn, c.op + (c.retry ? " (retry)" : ""), c.volume || "",
      c.rule ? c.rule + " / " + (c.done || c.action) : "", c.forwarded ? describe(c.backend) : "not forwarded",
      c.reply ? describe(c.reply) : c.outcome, (c.ms || 0).toFixed(2)];
    for (const text of cells) {{
      const cell = document.createElement("td");
      const clip = document.createElement("div");  // a long error is cut here, and whole on hover
      clip.className = "clip";
      clip.textContent = text;
      clip.title = String(text);
      cell.appendChild(clip);
      row.appendChild(cell);
    }}
    const bar = document.createElement("td");
    bar.className = "bar";
    const mark = document.createElement("span");
    mark.style.marginLeft = (100 * offset / span) + "%";
    mark.style.width = (100 * (c.ms || 0) / span) + "%";
    mark.title = c.op + " " + (c.volume || "") + ": " + (c.ms || 0).toFixed(2) + " ms";
    bar.appendChild(mark);
    row.appendChild(bar);
    body.appendChild(row);
  }}
  document.body.dataset.rendered = body.children.length;
}}
for (const name of [...new Set(calls.map(c => c.volume).filter(Boolean))].sort()) {{
  const option = document.createElement("option");
  option.value = option.textContent = name;
  picker.appendChild(option);
}}
picker.addEventListener("change", () => render(picker.value));
render("");
</script>
</body></html>
"""
