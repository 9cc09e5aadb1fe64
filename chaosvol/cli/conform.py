"""`conform`: check a volume plugin against what dockerd (or Podman) relies on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

import trio

from chaosvol.backends.spec import BACKEND_FORMS
from chaosvol.cli.common import EXIT_FOUND, EXIT_OK, EXIT_USAGE, command
from chaosvol.core.errors import UsageError
from chaosvol.tools.conform.checks import CHECKS
from chaosvol.tools.conform.report import CannotRun, conform, select
from chaosvol.tools.conform.shapes import SHAPES

EPILOG: Final = """\
checks, in the order they run:
""" + "\n".join(f"  {spec.id:<22}{spec.what}" for spec in CHECKS) + """

examples:
  chaosvol conform --backend myplugin
      the legacy plugin myplugin (/run/docker/plugins/myplugin.sock), as dockerd 26 talks to it
  chaosvol conform --backend unix:///run/docker/plugins/p.sock --daemon podman --junit conform.xml

It only touches volumes it creates (named PREFIX-...), removes them at the end, and says so when
it cannot. Exit status: 0 every check passed (warnings allowed); 1 a check failed; 2 it could not
run (nothing answers, not a volume plugin, bad arguments)."""


def add_parsers(commands: Any) -> None:
    parser = command(commands, run_conform, epilog=EPILOG, raw=True)
    parser.add_argument("--backend", required=True, metavar="SPEC", help=f"the plugin: {BACKEND_FORMS}")
    parser.add_argument("--daemon", choices=sorted(SHAPES), default="dockerd-26",
                        help="whose requests to send, byte for byte (default: dockerd-26)")
    parser.add_argument("--only", metavar="IDS", help="comma-separated check ids to run")
    parser.add_argument("--skip", metavar="IDS", help="comma-separated check ids not to run")
    parser.add_argument("--opt", action="append", default=[], metavar="K=V", help="a Create option the plugin takes (repeatable)")
    parser.add_argument("--prefix", metavar="NAME", help="prefix of the volumes it creates (default: chaosvol-conform-<random>)")
    parser.add_argument("--restart-cmd", metavar="CMD", help="a shell command that restarts the plugin (for the restart check)")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of lines")


def _ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _opts(items: list[str]) -> dict[str, str]:
    opts = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UsageError(f"--opt {item!r}: expected K=V")
        opts[key] = value
    return opts


def run_conform(args: argparse.Namespace) -> int:
    """check a volume plugin against what dockerd (or Podman) relies on: one line per check

    Send a volume plugin the exact requests a daemon sends, and check each answer against what
    the daemon does with it: PASS, FAIL (the daemon breaks), WARN (it works, at a cost) or SKIP,
    one line each.
    """
    ids = select(_ids(args.only), _ids(args.skip))
    shape = SHAPES[args.daemon]

    def progress(line: str) -> None:
        print(f"conform: {line}", file=sys.stderr, flush=True)

    print(f"conform: {args.backend} as {shape.title} talks to it ({len(ids)} checks)", file=sys.stderr, flush=True)
    try:
        outcome = trio.run(lambda: conform(args.backend, shape, ids=ids, prefix=args.prefix, opts=_opts(args.opt),
                                           restart_cmd=args.restart_cmd, progress=progress))
    except CannotRun as exc:
        print(f"chaosvol conform: cannot check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.junit:
        try:
            Path(args.junit).write_bytes(outcome.junit())
        except OSError as exc:
            raise UsageError(f"--junit {args.junit}: {exc.strerror or exc}") from exc
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
    else:
        for result in outcome.results:
            print(result)
        print(outcome.summary())
    for left in outcome.left_behind:
        print(f"conform: could not remove {left}", file=sys.stderr)
    return EXIT_FOUND if outcome.failed else EXIT_OK
