"""`explore`: which faults break my workload, each shrunk to a minimal profile."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import trio
import yaml

from chaosvol.cli.common import (
    EXIT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    command,
    daemon_arguments,
    duration,
    podman_command,
    socket_arguments,
    socket_path_of,
)
from chaosvol.core.errors import UsageError
from chaosvol.core.profile import load_profile, resolve_profile
from chaosvol.proxy.unix import check_socket_path
from chaosvol.tools.explore.run import BaselineFailed, Explore, ExploreSpec, check_actions, parse_budget
from chaosvol.tools.explore.space import DEFAULT_ACTIONS
from chaosvol.tools.sweep import Workbench, check_operation

EPILOG: Final = """\
examples:
  chaosvol explore -o /tmp/found -- ./my-workload.sh
      a baseline run with no fault counts the workload's calls; then one run per (operation,
      action, k-th call); every failure is shrunk to a minimal profile, /tmp/found/failure-N.yaml
  chaosvol explore --depth 2 --budget 30m --ops Remove,Get -o out -- make e2e

Default actions: """ + "; ".join(DEFAULT_ACTIONS) + """.
The workload uses the driver NAME (also $CHAOSVOL_DRIVER; $CHAOSVOL_EXPLORE_RUN is the run's
number). A run breaks the workload when it exits non-zero or the audit finds an inconsistency.
--work DIR keeps the runs made: run the same command again to take up where it stopped.
Exit status: 0 nothing broke it; 1 failures found (each with its minimal profile); 2 it could not
run (the workload fails with no fault, bad arguments)."""


def add_parsers(commands: Any) -> None:
    parser = command(commands, run_explore, epilog=EPILOG, raw=True)
    parser.add_argument("-o", "--out", required=True, metavar="OUTDIR", help="where failure-N.yaml, summary.json and report.html go")
    parser.add_argument("--ops", metavar="OPS", help="comma-separated operations to fault (default: every one the baseline saw)")
    parser.add_argument("--actions", metavar="ACTIONS", help="';'-separated actions, as a profile writes them, simplest first")
    parser.add_argument("--depth", type=int, choices=(1, 2), default=1, help="1: single faults; 2: pairs too, within --budget")
    parser.add_argument("--budget", metavar="RUNS|DURATION", help="stop after this many runs, or this long (e.g. 200, 45m)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="the order in which pairs are tried (default 0)")
    parser.add_argument("--profile", metavar="BASE", help="a base profile in force in every run, the baseline included")
    socket_arguments(parser, default_name="chaosvol")
    parser.add_argument("--backend", metavar="SPEC", help="the backend, shared by every run (default: a fresh built-in backend per run)")
    daemon_arguments(parser, what="audit and clean")
    parser.add_argument("--work", metavar="DIR", help="the runs' state, logs and backends (default: a new directory in /tmp); "
                        "an exploration started again with the same --work resumes")
    parser.add_argument("--timeout", type=duration, default=600.0, metavar="DURATION", help="kill a run after this long (default 10m)")
    parser.add_argument("--no-audit", action="store_true", help="judge runs by exit status only (no dockerd needed)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...", help="the workload")


def run_explore(args: argparse.Namespace) -> int:
    """search which faults break a workload and shrink each failure to a minimal profile

    Run COMMAND once with no fault to count its calls, then once per fault (each action on each
    k-th call of each operation; with --depth 2 also pairs), judge every run by its exit status and
    the audit, and shrink every failure to a smallest profile that still breaks it.
    """
    workload = tuple(args.command[1:] if args.command[:1] == ["--"] else args.command)
    if not workload:
        raise UsageError("give the workload after --: chaosvol explore -o OUT -- COMMAND...")
    ops = tuple(check_operation(op.strip()) for op in args.ops.split(",") if op.strip()) if args.ops else None
    actions = tuple(a.strip() for a in args.actions.split(";") if a.strip()) if args.actions else DEFAULT_ACTIONS
    check_actions(actions)
    runs, seconds = parse_budget(args.budget) if args.budget else (None, None)
    base_rules: tuple[dict[str, Any], ...] = ()
    if args.profile:
        load_profile(args.profile)  # refuse a bad one with file:line before anything runs
        written = yaml.safe_load(Path(resolve_profile(args.profile)).read_text(encoding="utf-8")) or {}
        base_rules = tuple(written.get("rules") or ())
    socket_path = socket_path_of(args)
    check_socket_path(socket_path)
    bench = Workbench(args.name if not args.socket else Path(args.socket).stem, socket_path, workload, Path(args.work or "."),
                      args.backend, args.docker_host, not args.no_audit, args.timeout, podman_command(args))
    bench.check_daemon()  # a daemon out of reach is said now, not after the baseline (and before a work directory is made)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="chaosvol-explore-"))
    bench = dataclasses.replace(bench, work=work)
    spec = ExploreSpec(bench, Path(args.out), base_rules, ops, actions, args.depth, runs, seconds, args.seed)

    def progress(line: str) -> None:
        print(f"explore: {line}", file=sys.stderr, flush=True)

    progress(f"work directory {work}; results in {args.out}")
    explore = Explore(spec, progress)
    try:
        _run(explore)
    except BaselineFailed as exc:
        print(f"chaosvol explore: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        made = sum(1 for _ in explore.runs)
        print(f"chaosvol explore: interrupted; {made} run(s) kept in {work}: the same command with --work {work} "
              "takes up from there", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if explore.runs:
            explore.write_outputs()
    print(explore.table(), end="")
    return EXIT_FOUND if explore.failures else EXIT_OK


def _run(explore: Explore) -> None:
    """The exploration; Ctrl-C comes out as KeyboardInterrupt, whichever task it reached."""
    try:
        trio.run(explore.run)
    except BaseExceptionGroup as group:
        interrupted, rest = group.split(KeyboardInterrupt)
        if interrupted is not None and rest is None:
            raise KeyboardInterrupt from None
        raise
