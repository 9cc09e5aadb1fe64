"""The differential check of `chaosvol audit`: random workloads under random faults against a real
private dockerd; the audit's verdict is taken first, then the truth is read invasively (dockerd
stopped, its volume database `<data-root>/volumes/metadata.db` read with chaosvol.tools.boltdb, the
built-in backend's directory and mount counts read from its files), and the two must agree on
every volume of the run.

The truth, per volume the workload named (the contract's kinds, from the two stores and what the
user asked for and was told: the labels and options of its last `docker volume create`, and the
exit statuses of its commands):

* `stale-in-daemon`: dockerd has a record of it under the plugin's driver; the backend has no such volume;
* `unknown-to-daemon`: the backend holds it; dockerd has no record of it (under any driver);
* `shadowed`: the backend holds it; dockerd's record of that name is a `local` volume;
* `metadata-lost`: the backend holds it, labels or options were given at create, and they are gone
  from dockerd: its record has others, or it has none though dockerd had acknowledged the volume
  (a create exited 0) and no `rm` since exited 0;
* `leaked-mount`: the backend counts a mount of it (the workload leaves no container running).

Three disagreements are undecidable and counted apart (`Outcome.undecidable`; README, "What it
can see"), all because labels never reach a plugin: the audit adds `metadata-lost` for a volume
created without labels or options that was purged and re-adopted (nothing says there were none),
or that the user removed while its lookup failed (no Remove sent: to the log, a purge); and on
26.1 it misses `metadata-lost` for a volume re-adopted after a forced rm that followed a failed
Remove (26.1 records a plain create as a lookup does, and a failed plain rm looks the same).

Every dockerd scans `/run/docker/plugins` and asks every plugin there (a `volume create` looks the
name up in all of them), so a batch runs in its own mount namespace with its own tmpfs there:
`main` starts itself again that way, and nothing outside sees its plugins or asks them.

Run it as a tool for many runs (the note's count), one dockerd build per process:

    .venv/bin/python -m tests.support.differential --dockerd 20 --runs 150 --seed 1 --out DIR

Each run's plan, verdicts and disagreement go to DIR/results.jsonl; `--only SEED` reruns one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaosvol.testing.private_dockerd import IMAGE, PrivateDockerd
from chaosvol.tools.boltdb import volume_records
from tests.support.audit import run_audit

# -- a run's plan: volumes, steps, faults (pure, from the seed) --------------------------------


@dataclass(frozen=True)
class Volume:
    name: str
    labels: dict[str, str]
    opts: dict[str, str]


@dataclass(frozen=True)
class Step:
    """One docker command (`verb` on `volume`); `with_next` runs it at the same time as the next."""

    verb: str  # create | run | rm | rm-f | inspect | ls
    volume: str
    with_next: bool = False


@dataclass(frozen=True)
class RunPlan:
    seed: int
    volumes: tuple[Volume, ...]
    steps: tuple[Step, ...]
    rules: tuple[dict[str, Any], ...]

    def profile(self) -> str:
        return yaml.safe_dump({"version": 1, "seed": self.seed, "rules": list(self.rules)}, sort_keys=False)


# Actions by operation, as a profile writes them; delays short enough for a run to stay cheap
# (hangs cost dockerd's 60-120 s timeouts and crash a 15 s restart stall: left to the scenarios).
ACTIONS: dict[str, list[Any]] = {
    "Create": ["drop", {"error": {"when": "before"}}, {"error": {"when": "after"}}, {"error": {"when": "after", "status": 200}},
               {"reset": {"when": "before"}}, {"reset": {"when": "after"}}, {"corrupt": {"body": "garbage"}}, {"delay": {"duration": "200ms"}}],
    "Remove": ["drop", {"error": {"when": "before"}}, {"error": {"when": "after"}}, {"error": {"when": "before", "status": 200}},
               {"reset": {"when": "before"}}, {"reset": {"when": "after"}}, {"corrupt": {"body": "empty"}}],
    "Mount": [{"error": {"when": "before"}}, {"error": {"when": "after"}}, {"reset": {"when": "after"}}, {"corrupt": {"body": "truncated"}}],
    "Unmount": ["drop", {"error": {"when": "before"}}, {"error": {"when": "after"}}, {"reset": {"when": "before"}}],
    "Get": [{"error": {"when": "before"}}, {"error": {"when": "before", "status": 200}}, "hide", "ghost", {"reset": {"when": "before"}},
            {"corrupt": {"body": "garbage"}}],
    "List": [{"error": {"when": "before"}}, "hide", "ghost", {"reset": {"when": "before"}}],
}
VERBS = ("create", "create", "run", "run", "rm", "rm-f", "inspect", "ls")


def plan_run(seed: int, prefix: str) -> RunPlan:
    """A random workload and one or two faults, from `seed` alone."""
    rng = random.Random(seed)
    volumes = []
    for i in range(rng.randint(3, 5)):
        labels = {"k": f"v{i}"} if rng.random() < 0.7 else {}
        opts = {"size": str(i + 1)} if rng.random() < 0.4 else {}
        volumes.append(Volume(f"{prefix}-{i}", labels, opts))
    steps = [Step("create", v.name) for v in volumes]  # every volume starts created
    for _ in range(rng.randint(4, 10)):
        steps.append(Step(rng.choice(VERBS), rng.choice(volumes).name, with_next=rng.random() < 0.2))
    rules = []
    for n in range(1 if rng.random() < 0.6 else 2):
        op = rng.choice(sorted(ACTIONS))
        action = rng.choice(ACTIONS[op])
        target = rng.choice(volumes).name
        if action == "ghost":
            action = {"ghost": {"names": [target]}}
        match: dict[str, Any] = {"op": op}
        # A List names no volume; `hide` uses the pattern to choose which entries to leave out.
        if (op != "List" and rng.random() < 0.7) or (op == "List" and action == "hide"):
            match["volume"] = target
        rule: dict[str, Any] = {"name": f"fault-{n}", "match": match, "after": rng.choice((0, 0, 1, 2)), "times": rng.choice((1, 1, 2, 3))}
        rule["action"] = action
        rules.append(rule)
    return RunPlan(seed, tuple(volumes), tuple(steps), tuple(rules))


# -- the truth, from dockerd's records and the backend's files (pure) --------------------------


@dataclass(frozen=True)
class Stores:
    """dockerd's records (name -> (driver, labels, options)) and the backend's volumes (name -> mounts)."""

    records: dict[str, tuple[str, dict[str, str] | None, dict[str, str] | None]]  # null stays null
    backend: dict[str, dict[str, int]]


def acknowledged(exits: list[tuple[str, str, int]], name: str) -> bool:
    """Whether dockerd last told the user that `name` exists (a create exited 0), not that it is gone
    (an rm exited 0)."""
    said = [verb for verb, volume, code in exits if volume == name and code == 0 and verb in ("create", "rm", "rm-f")]
    return bool(said) and said[-1] == "create"


def truth(stores: Stores, driver: str, intent: dict[str, Volume], exits: list[tuple[str, str, int]], names: list[str]) -> dict[str, list[str]]:
    """Each volume's inconsistencies, from the two stores (see the module's docstring)."""
    verdict: dict[str, list[str]] = {}
    for name in names:
        kinds = []
        record = stores.records.get(name)
        held = name in stores.backend
        wanted = intent.get(name)
        given = wanted is not None and bool(wanted.labels or wanted.opts)
        if not held:
            if record is not None and record[0] == driver:
                kinds.append("stale-in-daemon")
        else:
            if record is None or record[0] not in (driver, "local"):
                kinds.append("unknown-to-daemon")
                if given and acknowledged(exits, name):
                    kinds.append("metadata-lost")
            elif record[0] == "local":
                kinds.append("shadowed")
            elif wanted is not None and ((record[1] or {}) != wanted.labels or (record[2] or {}) != wanted.opts):
                kinds.append("metadata-lost")
            if any(count > 0 for count in stores.backend[name].values()):
                kinds.append("leaked-mount")
        verdict[name] = sorted(kinds)
    return verdict


def read_stores(data_root: Path, backend_root: Path) -> Stores:
    raw = volume_records((data_root / "volumes" / "metadata.db").read_bytes())
    records = {name: (r.driver, r.labels, r.options) for name, r in raw.items()}
    backend: dict[str, dict[str, int]] = {}
    volumes = backend_root / "volumes"
    for meta in volumes.glob("*/meta.json") if volumes.is_dir() else ():
        state = json.loads(meta.read_text())
        backend[meta.parent.name] = {str(k): int(v) for k, v in (state.get("mounts") or {}).items()}
    return Stores(records, backend)


# -- running it against a real dockerd ----------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    build: str
    audit: dict[str, list[str]]
    truth: dict[str, list[str]]
    exits: list[tuple[str, str, int]] = field(default_factory=list)  # (verb, volume, exit status) in order
    seconds: float = 0.0
    plan: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stores: dict[str, Any] = field(default_factory=dict)  # what the truth was read from, for a later look

    @property
    def disagreements(self) -> dict[str, tuple[list[str], list[str]]]:
        """Volume -> (the audit's kinds, the truth's), where they differ and it is decidable."""
        every = {name: (self.audit.get(name, []), kinds) for name, kinds in self.truth.items() if self.audit.get(name, []) != kinds}
        return {name: pair for name, pair in every.items() if name not in self.undecidable}

    @property
    def undecidable(self) -> dict[str, str]:
        """Volume -> why, where the audit's kinds and the truth's differ by `metadata-lost` alone,
        for a reason nothing the audit can read decides (README, "What it can see")."""
        plain = {v["name"] for v in self.plan.get("volumes", []) if not v["labels"] and not v["opts"]}
        found = {}
        for name, kinds in self.truth.items():
            failed_rm = any(volume == name and verb in ("rm", "rm-f") and code != 0 for verb, volume, code in self.exits)
            if (self.build != "20" and "metadata-lost" in kinds and failed_rm
                    and sorted(set(kinds) - {"metadata-lost"}) == self.audit.get(name, [])):
                found[name] = "re-adopted after a forced rm that followed a failed Remove, on 26.1: a plain create records the same"
                continue
            if "metadata-lost" in kinds or sorted({*kinds, "metadata-lost"}) != self.audit.get(name, []):
                continue
            if name in plain:
                found[name] = "created without labels or options: nothing says there were none"
            elif "unknown-to-daemon" in kinds and not acknowledged(self.exits, name):
                found[name] = "removed by the user with no Remove sent (its lookup failed first): a purge to the log"
        return found


class Harness:
    """One private dockerd (of `build`) and one plugin name for many runs; chaosvol restarted per
    run with that run's profile, a fresh built-in backend and a fresh event log."""

    def __init__(self, build: str, work: Path) -> None:
        self.build = build
        self.work = work
        self.name = f"cv-df-{secrets.token_hex(3)}-d{build}"
        self.daemon = PrivateDockerd.start(build=build)
        self.proxy: subprocess.Popen[str] | None = None

    def close(self) -> None:
        self._stop_proxy()
        self.daemon.stop()

    def _start_proxy(self, profile: Path, backend: Path, events: Path) -> None:
        self._stop_proxy()
        log = events.with_suffix(".log")
        with open(log, "w") as stderr:
            self.proxy = subprocess.Popen(
                [sys.executable, "-m", "chaosvol", "serve", "--name", self.name, "--backend", f"builtin:{backend}",
                 "--profile", str(profile), "--events", str(events)], stderr=stderr, text=True,
            )
        deadline = time.monotonic() + 20
        while "chaosvol: serving" not in log.read_text():
            if self.proxy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chaosvol did not start: {log.read_text()}")
            time.sleep(0.02)

    def _stop_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(15)
        self.proxy = None

    def docker(self, *args: str, timeout: float = 150) -> int:
        try:
            return self.daemon.docker(*args, check=False, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return -1

    def step(self, step: Step, volumes: dict[str, Volume]) -> int:
        volume = volumes[step.volume]
        if step.verb == "create":
            args = ["volume", "create", "-d", self.name]
            for key, value in volume.labels.items():
                args += ["--label", f"{key}={value}"]
            for key, value in volume.opts.items():
                args += ["-o", f"{key}={value}"]
            return self.docker(*args, volume.name)
        if step.verb == "run":
            return self.docker("run", "--rm", "-v", f"{volume.name}:/data", IMAGE, "sh", "-c", "echo x > /data/f")
        if step.verb in ("rm", "rm-f"):
            return self.docker("volume", "rm", *(["-f"] if step.verb == "rm-f" else []), volume.name)
        if step.verb == "inspect":
            return self.docker("volume", "inspect", volume.name)
        return self.docker("volume", "ls", "-q")

    def together(self, steps: list[Step], volumes: dict[str, Volume]) -> list[int]:
        """Run `steps` at the same time (one thread each); their exit statuses in order."""
        codes = [0] * len(steps)

        def one(index: int) -> None:
            codes[index] = self.step(steps[index], volumes)

        threads = [threading.Thread(target=one, args=(index,)) for index in range(len(steps))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return codes

    def run(self, plan: RunPlan) -> Outcome:
        started = time.monotonic()
        directory = self.work / f"run-{plan.seed}"
        directory.mkdir(parents=True, exist_ok=True)
        profile, backend, events = directory / "profile.yaml", directory / "backend", directory / "events.jsonl"
        profile.write_text(plan.profile())
        volumes = {v.name: v for v in plan.volumes}
        self._start_proxy(profile, backend, events)
        intent: dict[str, Volume] = {}
        exits: list[tuple[str, str, int]] = []
        pending: list[Step] = []
        for step in plan.steps:
            pending.append(step)
            if step.with_next:
                continue
            for done, code in zip(pending, self.together(pending, volumes), strict=True):
                exits.append((done.verb, done.volume, code))
                if done.verb == "create":
                    intent[done.volume] = volumes[done.volume]  # what the user asked for, whatever the answer
            pending = []
        audit = self.audit(backend, events, list(volumes))
        stores = self.read_truth(backend)
        verdict = truth(stores, self.name, intent, exits, list(volumes))
        self.cleanup(list(volumes), backend)
        return Outcome(plan.seed, self.build, audit, verdict, exits, round(time.monotonic() - started, 1), plan_json(plan), stores=asdict(stores))

    def audit(self, backend: Path, events: Path, names: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {name: [] for name in names}
        for finding in run_audit(self.daemon.host, self.name, backend, events):
            if finding["volume"] in found:
                found[finding["volume"]].append(finding["kind"])
        return {name: sorted(kinds) for name, kinds in found.items()}

    def read_truth(self, backend: Path) -> Stores:
        """dockerd stopped, its database read, dockerd started again on the same state."""
        directory = self.daemon.directory
        assert directory is not None
        stores: list[Stores] = []
        self.daemon.restart(while_down=lambda: stores.append(read_stores(directory / "root", backend)))
        return stores[0]

    def cleanup(self, names: list[str], backend: Path) -> None:
        self._start_proxy(self.work / "passthrough.yaml", backend, backend.parent / "cleanup-events.jsonl")
        for name in names:
            containers = self.daemon.docker("ps", "-aq", "--filter", f"volume={name}", check=False).stdout.split()
            if containers:
                self.docker("rm", "-f", *containers)
            self.docker("volume", "rm", "-f", name)
        self._stop_proxy()
        shutil.rmtree(backend, ignore_errors=True)


def plan_json(plan: RunPlan) -> dict[str, Any]:
    return {"volumes": [asdict(v) for v in plan.volumes], "steps": [asdict(s) for s in plan.steps], "rules": list(plan.rules)}


def runs(build: str, seeds: list[int], work: Path, progress: Callable[[Outcome], None] = lambda _: None) -> Iterator[Outcome]:
    """Each seed's run on a private dockerd of `build`, in order."""
    (work / "passthrough.yaml").write_text("version: 1\nrules: []\n")
    harness = Harness(build, work)
    try:
        for seed in seeds:
            plan = plan_run(seed, f"df{seed}")
            try:
                outcome = harness.run(plan)
            except (RuntimeError, OSError, subprocess.SubprocessError, AssertionError) as exc:  # reported with its seed; the batch goes on
                outcome = Outcome(seed, build, {}, {}, plan=plan_json(plan), error=f"{type(exc).__name__}: {exc}")
            progress(outcome)
            yield outcome
    finally:
        harness.close()


ISOLATED = "CHAOSVOL_DIFFERENTIAL_ISOLATED"  # set once main runs in its own mount namespace


def summarize(paths: list[Path]) -> tuple[str, int]:
    """The counts over results files written by earlier batches, judged by this module's rules
    (so a file from a batch run before a rule changed is judged again): text, and 1 when any run
    disagrees or broke."""
    names = {f.name for f in dataclasses.fields(Outcome)}
    outcomes = [Outcome(**{k: v for k, v in json.loads(line).items() if k in names}) for path in paths for line in path.read_text().splitlines() if line.strip()]
    lines, bad = [], 0
    for build in sorted({o.build for o in outcomes}):
        mine = [o for o in outcomes if o.build == build]
        judged = sum(len(o.truth) for o in mine)
        inconsistent = sum(1 for o in mine for kinds in o.truth.values() if kinds)
        wrong = {o.seed: o.disagreements for o in mine if o.disagreements}
        broken = {o.seed: o.error for o in mine if o.error}
        reasons: dict[str, int] = {}
        for o in mine:
            for why in o.undecidable.values():
                reasons[why] = reasons.get(why, 0) + 1
        bad += bool(wrong or broken)
        lines.append(f"dockerd {build}: {len(mine)} runs, {judged} volumes judged ({inconsistent} inconsistent in truth), "
                     f"{len(wrong)} runs with a disagreement, {len(broken)} broken")
        lines += [f"  undecidable, {count} volumes: {why}" for why, count in sorted(reasons.items())]
        lines += [f"  seed {seed}: {pairs}" for seed, pairs in sorted(wrong.items())]
        lines += [f"  seed {seed} broke: {error}" for seed, error in sorted(broken.items())]
    return "\n".join(lines), 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.differential", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dockerd", default="20", help="20, 26 or a PATH (see chaosvol.testing.private_dockerd)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1, help="the first seed; runs use SEED, SEED+1, ...")
    parser.add_argument("--only", type=int, action="append", help="run only this seed (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="results.jsonl and run directories (default: a temporary directory)")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="RESULTS", help="judge results.jsonl files again and print the counts")
    args = parser.parse_args(argv)
    if args.summarize:
        text, code = summarize(args.summarize)
        print(text)
        return code
    if os.environ.get(ISOLATED) != "1":
        os.makedirs("/run/docker/plugins", exist_ok=True)
        command = [sys.executable, "-m", "tests.support.differential", *(sys.argv[1:] if argv is None else argv)]
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                               'mount -t tmpfs tmpfs /run/docker/plugins && exec "$@"', "isolated", *command], {**os.environ, ISOLATED: "1"})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the private dockerd
    out = args.out or Path(tempfile.mkdtemp(prefix="cvdiff", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    seeds = args.only or list(range(args.seed, args.seed + args.runs))
    total = disagreeing = errors = undecidable = 0
    started = time.monotonic()
    with open(out / "results.jsonl", "a") as results:
        for outcome in runs(args.dockerd, seeds, out):
            total += 1
            errors += outcome.error is not None
            disagreeing += bool(outcome.disagreements)
            undecidable += bool(outcome.undecidable)
            results.write(json.dumps({**asdict(outcome), "disagreements": outcome.disagreements, "undecidable": outcome.undecidable}) + "\n")
            results.flush()
            if outcome.error:
                mark = f"ERROR {outcome.error}"
            elif outcome.disagreements:
                mark = f"DISAGREE {json.dumps(outcome.disagreements)}"
            else:
                mark = "agree" + (f" (undecidable: {outcome.undecidable})" if outcome.undecidable else "")
            print(f"[{total}/{len(seeds)} {time.monotonic() - started:.0f}s] dockerd {args.dockerd} seed {outcome.seed}: {mark}", file=sys.stderr, flush=True)
    print(f"dockerd {args.dockerd}: {total} runs, {disagreeing} with a disagreement, {undecidable} with an undecidable volume, "
          f"{errors} errors ({out / 'results.jsonl'})")
    return 1 if disagreeing or errors else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
