import pytest

from chaosvol.core.effects import Forward, Hold
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import parse_profile
from tests.support.builders import Playbook, list_, remove, rule


def test_hold_parks_the_call_before_the_backend_sees_it() -> None:
    Playbook(rule("hold", op="Remove")).call(remove("v")).expect(Hold(None), Forward())


def test_hold_after_lets_the_backend_act_and_parks_the_answer() -> None:
    play = Playbook(rule({"hold": {"when": "after", "timeout": "45s"}}, op="List"))
    play.call(list_()).expect(Forward(), Hold(45.0))


def test_a_negative_timeout_is_refused_where_it_is_written() -> None:
    with pytest.raises(ProfileError, match=r"p.yaml:4:\d+: rules\[0\].action.hold.timeout"):
        parse_profile("version: 1\nrules:\n  - match: {op: List}\n    action: {hold: {timeout: -1s}}\n", "p.yaml")
