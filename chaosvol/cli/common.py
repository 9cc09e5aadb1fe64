"""What every command shares: exit codes, common arguments, logging, and how errors are said."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shlex
import sys
from collections.abc import Callable
from typing import Any, Final

from chaosvol.core.durations import DURATION_FORMS, parse_duration
from chaosvol.core.errors import ChaosvolError, ProfileError, UsageError
from chaosvol.proxy.settings import default_socket_path

EXIT_OK: Final = 0


EXIT_FOUND: Final = 1


EXIT_USAGE: Final = 2


EXIT_CRASHED: Final = 3  # a crash rule without restart: the plugin "died", as asked


def socket_arguments(parser: argparse.ArgumentParser, *, default_name: str) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--name", default=default_name, help=f"driver name for `docker volume create -d NAME`; socket /run/docker/plugins/NAME.sock (default: {default_name})"
    )
    where.add_argument("--socket", metavar="PATH", help="listen on this socket path instead")


def daemon_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """--docker-host URL or --podman [COMMAND]: the daemon to `what` (audit, clean, ...)."""
    daemon = parser.add_mutually_exclusive_group()
    daemon.add_argument("--docker-host", metavar="URL", help=f"dockerd to {what} (default: DOCKER_HOST, then the default socket)")
    daemon.add_argument(
        "--podman", nargs="?", const="podman", metavar="COMMAND",
        help=f"the daemon is Podman: {what} it instead of dockerd; COMMAND runs podman with any global options "
        "(default: podman; e.g. 'podman --root /x --runroot /y')",
    )


def podman_command(args: argparse.Namespace) -> tuple[str, ...] | None:
    """--podman's command, split as a shell would; None without --podman."""
    if args.podman is None:
        return None
    words = tuple(shlex.split(args.podman))
    if not words:
        raise UsageError("--podman: the command is empty (give podman, or podman with its global options)")
    return words


def log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug shows every call; info every injected fault (default: info)",
    )


def seed_number(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a seed is a whole number >= 0")
    return value


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s.%(msecs)03d chaosvol %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )


def socket_path_of(args: argparse.Namespace) -> str:
    return str(args.socket) if args.socket else default_socket_path(str(args.name))


def driver_name_of(args: argparse.Namespace) -> str:
    if args.socket:
        base = str(args.socket).rsplit("/", 1)[-1]
        return base.removesuffix(".sock")
    return str(args.name)


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {DURATION_FORMS}") from None


def first_chaosvol_error(group: BaseExceptionGroup[BaseException]) -> ChaosvolError | None:
    """The error a user should read from a failed trio.run: ours, or an OSError said in words."""
    for exc in group.exceptions:
        if isinstance(exc, ChaosvolError):
            return exc
        if isinstance(exc, OSError):
            return UsageError(os_error_text(exc))
        if isinstance(exc, BaseExceptionGroup):
            found = first_chaosvol_error(exc)
            if found is not None:
                return found
    return None


def os_error_text(exc: OSError) -> str:
    """`PATH: what went wrong`, as a person reads it, without Python's `[Errno N]`."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {what}"
    return what


def as_message(exc: ChaosvolError) -> str:
    text = str(exc)
    if isinstance(exc, ProfileError):
        return text
    return f"chaosvol: {text}"


def command(
    commands: Any, run: Callable[[argparse.Namespace], int], *, epilog: str | None = None, raw: bool = False
) -> argparse.ArgumentParser:
    """The subcommand `run` carries out, named after it (run_conform: conform). Its docstring says
    the rest: the first line is the help `chaosvol --help` lists, what follows the description.
    `raw`: the description and the epilog keep their line breaks."""
    help_text, _, description = inspect.cleandoc(run.__doc__ or "").partition("\n\n")
    parser: argparse.ArgumentParser = commands.add_parser(
        run.__name__.removeprefix("run_"), help=help_text, description=description or help_text, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser
