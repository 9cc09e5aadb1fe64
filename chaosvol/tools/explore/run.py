"""Running an exploration: the baseline, the experiments within the budget, the shrinking of
every failure to a minimal profile, and what is written (failure-N.yaml, summary.json,
report.html, the table).

One proxy serves the whole exploration (sweep's Workbench: a fresh built-in backend per run, the
proxy paused and what the run left removed between runs). Every finished run is appended to
WORK/runs.jsonl as it ends, so an interrupted exploration started again with the same --work
takes up where it stopped: no run is made twice.
"""

from __future__ import annotations

import html
import json
import random
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from chaosvol.core.durations import DURATION_FORMS, parse_duration
from chaosvol.core.errors import ProfileError, UsageError
from chaosvol.core.profile import parse_profile
from chaosvol.core.protocol import Operation
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.state import ProxyState
from chaosvol.tools.explore.space import (
    RULE_PREFIX,
    Experiment,
    depth1,
    describe,
    from_key,
    key,
    pairs,
    rules,
    shrink,
)
from chaosvol.tools.sweep import Workbench

BASELINE: Final = "[]"  # the key of the experiment with no fault
UNRUN: Final = object()  # the outcome of a candidate the budget cannot pay for


class BaselineFailed(Exception):
    """The workload fails (or leaves an inconsistency) with no fault at all: exit 2."""


@dataclass(frozen=True, slots=True)
class ExploreSpec:
    bench: Workbench
    out: Path
    base_rules: tuple[dict[str, Any], ...] = ()  # the base profile's rules, as written
    ops: tuple[str, ...] | None = None  # None: every operation the baseline saw but Activate
    actions: tuple[str, ...] = ()
    depth: int = 1
    budget_runs: int | None = None
    budget_seconds: float | None = None
    seed: int = 0


@dataclass(slots=True)
class Run:
    n: int
    key: str
    exit_status: int | None  # None: killed after the timeout
    findings: list[str]  # "kind volume"
    fired: list[str]  # the faults (rule names) that fired
    seconds: float  # the workload
    overhead: float  # pause, audit, clean-up
    output: str
    counts: dict[str, int] = field(default_factory=dict)  # calls per operation in the run
    volumes: list[str] = field(default_factory=list)  # the names the run's calls named
    hits: list[str] = field(default_factory=list)  # for each fault, the call it hit ("Get v1"), or "(did not fire)"

    @property
    def broke(self) -> bool:
        return self.exit_status != 0 or bool(self.findings)

    @property
    def outcome(self) -> tuple[int | None, tuple[str, ...]] | None:
        """How the run broke (its exit status and the audit's kinds), None if it did not: what
        a smaller experiment must keep to be the same failure made smaller."""
        return (self.exit_status, tuple(sorted({finding.split()[0] for finding in self.findings}))) if self.broke else None

    def verdict(self) -> str:
        exit_text = "timeout" if self.exit_status is None else f"exit {self.exit_status}"
        return exit_text + (f", audit {'; '.join(self.findings)}" if self.findings else "")


@dataclass
class Failure:
    minimal: Experiment
    run: Run
    verified: bool | None  # None: not run again, the budget was spent
    found_by: list[str]
    file: str = ""
    shrunk: bool = True  # False: smaller experiments were left untried, the budget was spent

    def note(self) -> str:
        """What to keep in mind about this failure, in brackets ("" when nothing)."""
        remarks = []
        if not self.shrunk:
            remarks.append("the smallest among the runs made: the budget was spent before every smaller experiment was tried")
        if self.verified is None:
            remarks.append("not run again to confirm it: the budget was spent")
        elif not self.verified:
            remarks.append("did not break the same way again when verified: flaky")
        return f" ({'; '.join(remarks)})" if remarks else ""


class Explore:
    def __init__(self, spec: ExploreSpec, progress: Callable[[str], None]) -> None:
        self.spec = spec
        self.progress = progress
        self.work = spec.bench.work
        self.runs: dict[str, Run] = {}
        self.log_path = self.work / "runs.jsonl"
        self.started = time.monotonic()
        self.budget_exhausted = False
        self.failures: list[Failure] = []
        self.actions: dict[str, list[str]] = {}
        self.made = 0  # the last run's number

    def profile_text(self, exp: Experiment) -> dict[str, Any]:
        return {"version": 1, "rules": [*rules(exp), *self.spec.base_rules]}

    def _load_previous(self) -> None:
        if self.log_path.exists():
            for number, line in enumerate(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    run = Run(**json.loads(line))
                    from_key(run.key)
                except (ValueError, TypeError) as exc:  # cut short by a crash, or not a run's line
                    self.progress(f"{self.log_path}:{number}: not a run ({exc}); that run will be made again")
                    continue
                self.runs[run.key] = run
            if self.runs:
                self.progress(f"resuming: {len(self.runs)} run(s) already made in {self.work}")
        # The interrupted run left its log and backend but no line: its number is not reused.
        numbers = [int(path.stem.removeprefix("run-")) for path in self.work.glob("run-*.log") if path.stem.removeprefix("run-").isdigit()]
        self.made = max([self.made, *numbers, *(run.n for run in self.runs.values())])

    async def run(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.spec.out.mkdir(parents=True, exist_ok=True)
        self._load_previous()
        events = EventLog.open(str(self.work / "events.jsonl"))
        async with self.spec.bench.proxy(parse_profile(json.dumps(self.profile_text(())), "base"), events) as state:
            if self.runs:  # resuming: what the interrupted run left must not change the next run's calls
                self.progress("cleaning what the interrupted run left")
                state.pause()
                await self.spec.bench.clean_up(state, sorted({name for run in self.runs.values() for name in run.volumes}))
            baseline = await self.one(state, ())
            if baseline.broke:
                alone = "with the base profile alone" if self.spec.base_rules else "with no fault"
                raise BaselineFailed(f"{alone} the workload fails: {baseline.verdict()} (output: {baseline.output})")
            self.choose_actions(baseline.counts)
            singles = depth1({op: n for op, n in baseline.counts.items() if op in self.actions}, self.actions)
            plan: list[Experiment] = list(singles)
            self.progress(f"baseline: {baseline.verdict()}, calls {baseline.counts}; {len(singles)} single fault(s)")
            await self.explore(state, plan)
            if self.spec.depth >= 2 and not self.budget_exhausted:
                passed = {exp for exp in singles if key(exp) in self.runs and not self.runs[key(exp)].broke}
                await self.explore(state, pairs(singles, passed, random.Random(self.spec.seed)), pairs_of=len(singles))
            await self.shrink_failures(state)

    def choose_actions(self, counts: dict[str, int]) -> None:
        """For each operation to explore, the actions that work on it (a profile would take them).

        Raises:
            BaselineFailed: no action works on any call the baseline made: nothing to explore
                (never a pass for want of trying)."""
        wanted = self.spec.ops or tuple(op for op in counts if op != Operation.ACTIVATE.value)
        for op in wanted:
            usable = [action for action in self.spec.actions if not action_problem(action, op)]
            if usable and counts.get(op):
                self.actions[op] = usable
        if not self.actions:
            made = ", ".join(f"{op} {n}" for op, n in counts.items()) or "none"
            raise BaselineFailed(f"nothing to explore: the baseline made no call that these actions work on "
                                 f"(its calls: {made}; --ops {','.join(wanted) or '(none)'})")

    def _budget_left(self) -> bool:
        made = sum(1 for k in self.runs if k != BASELINE)
        if self.spec.budget_runs is not None and made >= self.spec.budget_runs:
            return False
        return self.spec.budget_seconds is None or time.monotonic() - self.started < self.spec.budget_seconds

    async def explore(self, state: ProxyState, plan: Any, *, pairs_of: int = 0) -> None:
        total = len(plan) if isinstance(plan, list) else pairs_of * (pairs_of - 1) // 2
        for index, exp in enumerate(plan, 1):
            if key(exp) in self.runs:
                continue
            if not self._budget_left():
                self.budget_exhausted = True
                self.progress("budget spent: stopping here (the summary says what was not run)")
                return
            run = await self.one(state, exp)
            verdict = f"BROKE {run.verdict()} (hit {', '.join(run.hits)})" if run.broke else "passed"
            self.progress(f"[{index}/{total}] {describe(exp)}: {verdict}{self._eta(total - index)}")

    def _eta(self, remaining: int) -> str:
        made = [run.seconds + run.overhead for k, run in self.runs.items() if k != BASELINE]
        if not made or remaining <= 0:
            return ""
        seconds = sum(made) / len(made) * remaining
        return f" (about {seconds / 60:.0f} min left)" if seconds >= 90 else f" (about {seconds:.0f} s left)"

    async def one(self, state: ProxyState, exp: Experiment, *, fresh: bool = False) -> Run:
        """The run of `exp`: made now, or found among those already made (unless `fresh`)."""
        known = self.runs.get(key(exp))
        if known is not None and not fresh:
            return known
        n = self.made = max(self.made, len(self.runs)) + 1  # verification runs are numbered too
        bench = self.spec.bench
        profile = parse_profile(json.dumps(self.profile_text(exp)), f"explore run {n}")
        backend_spec = await bench.prepare(state, str(n), profile)
        first_seq = state.recent.last_seq
        output = self.work / f"run-{n}.log"
        exit_status, seconds = await bench.run_workload(output, {"CHAOSVOL_EXPLORE_RUN": str(n)})
        judged = time.monotonic()
        records, findings, _ = await bench.judge(state, first_seq, backend_spec)
        counts: dict[str, int] = {}
        for record in records:
            if record.op:
                counts[record.op] = counts.get(record.op, 0) + 1
        fired = sorted({r.rule for r in records if r.rule and r.rule.startswith(RULE_PREFIX)})
        hit = {r.rule: f"{r.op} {r.volume}" if r.volume else r.op for r in records if r.rule and r.rule.startswith(RULE_PREFIX) and r.op}
        hits = [hit.get(f"{RULE_PREFIX}{index}", "(did not fire)") for index in range(1, len(exp) + 1)]
        run = Run(n, key(exp), exit_status, [f"{f.kind} {f.volume}" for f in findings], fired, round(seconds, 3),
                  round(time.monotonic() - judged, 3), str(output), counts, sorted({r.volume for r in records if r.volume}), hits)
        if not fresh:
            self.runs[run.key] = run
            with open(self.log_path, "a", encoding="utf-8") as handle:  # noqa: ASYNC230  one line, local
                handle.write(json.dumps(asdict(run)) + "\n")
        return run

    async def shrink_failures(self, state: ProxyState) -> None:
        failing = [from_key(k) for k, run in self.runs.items() if k != BASELINE and run.broke]
        singles = sorted((from_key(k) for k in self.runs if k != BASELINE and len(from_key(k)) == 1), key=lambda e: (self._rank(e[0].action), e))
        by_minimal: dict[Experiment, list[Experiment]] = {}
        untried: set[Experiment] = set()  # failures whose shrinking passed over candidates it could not afford

        for exp in sorted(failing, key=lambda e: (len(e), e)):

            async def outcome(candidate: Experiment, failing: Experiment = exp) -> Hashable:
                if key(candidate) not in self.runs and not self._budget_left():
                    untried.add(failing)
                    self.budget_exhausted = True
                    return UNRUN  # never the outcome shrinking looks for: the candidate is passed over
                return (await self.one(state, candidate)).outcome

            minimal = await shrink(exp, outcome, self.actions, singles)
            by_minimal.setdefault(minimal, []).append(exp)
        for stale in self.spec.out.glob("failure-*.yaml"):  # an earlier exploration's, into the same OUT
            stale.unlink()
        for number, (minimal, found_by) in enumerate(sorted(by_minimal.items()), 1):
            run = self.runs[key(minimal)]
            verified = (await self.one(state, minimal, fresh=True)).outcome == run.outcome if self._budget_left() else None
            shrunk = not untried.intersection(found_by)
            failure = Failure(minimal, run, verified, [describe(e) for e in found_by], f"failure-{number}.yaml", shrunk)
            self.failures.append(failure)
            self.write_failure(failure)
            self.progress(f"failure {number}: {describe(minimal)}: {failure.run.verdict()}{failure.note()}")

    def write_failure(self, failure: Failure) -> None:
        command = " ".join(self.spec.bench.command)
        header = [
            f"chaosvol explore: a minimal profile that breaks the workload ({failure.file})",
            f"faults: {describe(failure.minimal)}",
            f"calls hit: {', '.join(failure.run.hits)}",
            f"broke: {failure.run.verdict()}{failure.note()}",
            f"found by: {', '.join(failure.found_by)}",
            f"rerun: chaosvol serve --name {self.spec.bench.name} --profile {failure.file}, then: {command}",
        ]
        text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(self.profile_text(failure.minimal), sort_keys=False)
        (self.spec.out / failure.file).write_text(text, encoding="utf-8")

    # -- what is said at the end --------------------------------------------------------------

    def matrix(self) -> dict[tuple[str, str], list[Run]]:
        cells: dict[tuple[str, str], list[Run]] = {}
        for k, run in self.runs.items():
            for fault in from_key(k) if k != BASELINE else ():
                cells.setdefault((fault.op, fault.action), []).append(run)
        return cells

    def _rank(self, action: str) -> int:
        """Where `action` stands among the actions (simplest first)."""
        return self.spec.actions.index(action) if action in self.spec.actions else len(self.spec.actions)

    def summary(self) -> dict[str, Any]:
        overheads = [run.overhead for k, run in self.runs.items() if k != BASELINE]
        baseline = self.runs.get(BASELINE)
        return {
            "command": list(self.spec.bench.command),
            "baseline": asdict(baseline) if baseline else None,
            "runs": [asdict(run) | {"faults": describe(from_key(run.key)), "broke": run.broke} for run in self.runs.values()],
            "failures": [{"file": f.file, "faults": describe(f.minimal), "hits": f.run.hits, "verdict": f.run.verdict(),
                          "verified": f.verified, "shrunk": f.shrunk, "found_by": f.found_by} for f in self.failures],
            "overhead_s": {"mean": round(sum(overheads) / len(overheads), 3) if overheads else 0.0,
                           "max": max(overheads, default=0.0)},
            "budget_exhausted": self.budget_exhausted,
        }

    def table(self) -> str:
        rows = [("OPERATION", "ACTION", "RUNS", "BROKE", "KINDS")]
        for (op, action), runs in sorted(self.matrix().items(), key=lambda cell: (cell[0][0], self._rank(cell[0][1]))):
            kinds = sorted({finding.split()[0] for run in runs for finding in run.findings})
            exits = sorted({str(run.exit_status) for run in runs if run.exit_status != 0})
            what = ", ".join(kinds + [f"exit {e}" for e in exits])
            rows.append((op, action, str(len(runs)), str(sum(run.broke for run in runs)), what or "-"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        for failure in self.failures:
            lines.append(f"{self.spec.out / failure.file}: {describe(failure.minimal)}: {failure.run.verdict()}{failure.note()}")
        return "\n".join(lines) + "\n"

    def report_html(self) -> str:
        cells = self.matrix()
        ops = sorted({op for op, _ in cells})
        actions = sorted({action for _, action in cells}, key=self._rank)
        head = "".join(f"<th>{html.escape(action)}</th>" for action in actions)
        body = []
        for op in ops:
            row = [f"<th>{html.escape(op)}</th>"]
            for action in actions:
                runs = cells.get((op, action), [])
                broke = sum(run.broke for run in runs)
                items = "".join(f"<li class='{'broke' if run.broke else 'passed'}'>run {run.n}: {html.escape(describe(from_key(run.key)))}: "
                                f"{html.escape(run.verdict())}</li>" for run in runs)
                cls = "empty" if not runs else "broke" if broke else "passed"
                row.append(f"<td class='{cls}' data-op='{html.escape(op)}' data-action='{html.escape(action)}'>"
                           f"<details><summary>{len(runs)} run(s), {broke} broke</summary><ul>{items}</ul></details></td>")
            body.append("<tr>" + "".join(row) + "</tr>")
        failures = "".join(
            f"<li><b>{html.escape(f.file)}</b>: {html.escape(describe(f.minimal))}: {html.escape(f.run.verdict())}{html.escape(f.note())}"
            f"<br>calls hit: {html.escape(', '.join(f.run.hits))}; found by: {html.escape(', '.join(f.found_by))}</li>"
            for f in self.failures
        )
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>chaosvol explore</title><style>
body {{ font-family: sans-serif; }} table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #999; padding: 4px; vertical-align: top; }}
td.broke {{ background: #f8d0d0; }} td.passed {{ background: #d8f0d8; }} td.empty {{ background: #eee; }}
li.broke {{ color: #a00; }}
</style></head><body>
<h1>chaosvol explore: {html.escape(" ".join(self.spec.bench.command))}</h1>
<p>{len(self.runs) - 1} run(s) besides the baseline; {len(self.failures)} minimal failure(s).</p>
<table id="matrix"><tr><th>operation \\ action</th>{head}</tr>{"".join(body)}</table>
<h2>Minimal failures</h2><ul id="failures">{failures}</ul>
</body></html>
"""

    def write_outputs(self) -> None:
        (self.spec.out / "summary.json").write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        (self.spec.out / "report.html").write_text(self.report_html(), encoding="utf-8")


def action_problem(action: str, op: str) -> str:
    """Why `action` (as a profile writes it) cannot fault `op`'s calls, "" when it can."""
    try:
        parse_profile(json.dumps({"version": 1, "rules": [{"match": {"op": op}, "action": yaml.safe_load(action)}]}), "--actions")
    except ProfileError as exc:
        return "; ".join(f"{p.where.removeprefix('rules[0].')}: {p.message}" for p in exc.problems)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at column {mark.column + 1}" if mark is not None else ""
        return f"not YAML: {getattr(exc, 'problem', None) or exc}{where}"
    return ""


def check_actions(actions: tuple[str, ...]) -> None:
    """Refuse an action that works on no operation at all (a typo would otherwise explore nothing).

    Raises:
        UsageError: the first such action, with the loader's words for the first operation."""
    for action in actions:
        problems = [action_problem(action, op.value) for op in Operation]
        if all(problems):
            raise UsageError(f"--actions {action!r}: {problems[0]}")


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """`--budget`: a number of runs (`40`) or a duration (`30m`)."""
    if text.isdigit():
        return int(text), None
    try:
        return None, parse_duration(text)
    except ValueError:
        raise UsageError(f"--budget {text!r}: a number of runs, or {DURATION_FORMS}") from None
