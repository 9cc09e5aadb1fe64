"""The command line: argparse, logging, exit codes. The only place that reads argv or prints.

Exit codes (shared/contract.md): 0 success, 1 a check found something, 2 usage or input error.
A ChaosvolError becomes one clear message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

from chaosvol import __version__
from chaosvol.cli import conform, ctl, explore, profiles, runs, serve, sweep
from chaosvol.cli.common import EXIT_OK, EXIT_USAGE, as_message, os_error_text
from chaosvol.core.errors import ChaosvolError

DESCRIPTION: Final = """\
chaosvol: a Docker volume plugin that forwards every call to a real backend plugin and injects
the faults a profile asks for (dropped removes, errors, delays, hangs, resets, corrupt answers),
to reproduce on demand the inconsistencies between dockerd and its volume plugins."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `chaosvol` console script and of `python -m chaosvol`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        code = args.run(args)
    except ChaosvolError as exc:
        print(as_message(exc), file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = EXIT_OK
    except OSError as exc:  # the machine refused something no command anticipated: still one line
        if os.environ.get("CHAOSVOL_DEBUG"):
            raise
        print(f"chaosvol: {os_error_text(exc)}", file=sys.stderr)
        code = EXIT_USAGE
    except Exception as exc:  # a bug of ours: one line for the user, the traceback on request
        if os.environ.get("CHAOSVOL_DEBUG"):
            raise
        print(f"chaosvol: internal error: {type(exc).__name__}: {exc} (set CHAOSVOL_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaosvol", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"chaosvol {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in (serve, ctl, sweep, explore, profiles, runs, conform):
        group.add_parsers(commands)
    return parser
