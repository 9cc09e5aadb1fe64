"""`chaosvol schema` and the loader agree: what one accepts, the other accepts."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import SHIPPED_PROFILE_DIRS, parse_profile
from chaosvol.faults import FAULTS
from chaosvol.tools.schema import profile_schema

SCHEMA = profile_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SHIPPED = sorted({p for d in SHIPPED_PROFILE_DIRS if d.is_dir() for p in d.glob("*.yaml")})


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_passes_the_schema(path: Path) -> None:
    VALIDATOR.validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("word", sorted(FAULTS))
def test_every_registered_example_passes_the_schema(word: str) -> None:
    action = yaml.safe_load(FAULTS[word].example)
    VALIDATOR.validate({"version": 1, "rules": [{"action": action}]})


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2},
        {"version": 1, "seeed": 1},
        {"version": 1, "rules": [{"action": "dorp"}]},
        {"version": 1, "rules": [{"action": {"delay": {"duration": "2"}}}]},
        {"version": 1, "rules": [{"action": {"delay": {"duration": "2s", "when": "later"}}}]},
        {"version": 1, "rules": [{"action": "delay"}]},
        {"version": 1, "rules": [{"match": {"op": "Remov"}, "action": "drop"}]},
        {"version": 1, "rules": [{"action": "drop", "actions": ["drop"]}]},
        {"version": 1, "rules": [{"action": "drop", "probability": 2}]},
        {"version": 1, "rules": [{"action": {"ghost": {"nam": ["a"]}}}]},
    ],
)
def test_what_the_schema_refuses_the_loader_refuses_too(document: dict[str, object]) -> None:
    assert list(VALIDATOR.iter_errors(document))
    with pytest.raises(ProfileError):
        parse_profile(yaml.safe_dump(document), "p.yaml")
