"""`check` and `schema`: profiles checked without serving, and the formats' JSON Schemas."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from chaosvol.cli.common import EXIT_OK, EXIT_USAGE, command
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import advice, load_profile
from chaosvol.tools.schema import events_schema, profile_schema

log = logging.getLogger("chaosvol")


def add_parsers(commands: Any) -> None:
    check = command(commands, run_check)
    check.add_argument("profiles", nargs="+", metavar="PROFILE", help="a profile file or a shipped name")

    schema = command(commands, run_schema)
    schema.add_argument("--events", action="store_true", help="the JSON Schema of the event log's lines instead (event schema 2)")


def run_check(args: argparse.Namespace) -> int:
    """validate profiles

    Validate profiles: every problem is printed as file:line:column: field: message. Exit 0 when
    all are valid, 2 otherwise.
    """
    code = EXIT_OK
    for spec in args.profiles:
        try:
            profile = load_profile(spec)
        except ProfileError as exc:
            print(exc, file=sys.stderr)
            code = EXIT_USAGE
            continue
        rules = len(profile.rules)
        for note in advice(profile):
            print(note, file=sys.stderr)
        print(f"{profile.source}: ok ({rules} rule{'s' if rules != 1 else ''})")
    return code


def run_schema(args: argparse.Namespace) -> int:
    """print the JSON Schema of the profile format (for editors and CI linters)

    Print the JSON Schema (draft 2020-12) of the profile format, generated from the same
    definitions the loader uses. `chaosvol check` remains the authority: it also checks what a
    schema cannot say.
    """
    print(json.dumps(events_schema() if args.events else profile_schema(), indent=2))
    return EXIT_OK
