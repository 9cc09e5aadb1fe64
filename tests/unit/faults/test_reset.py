from chaosvol.core.effects import Forward, Reset
from tests.support.builders import Playbook, remove, rule


def test_reset_before_and_after_forwarding() -> None:
    Playbook(rule("reset", op="Remove")).call(remove("v")).expect(Reset())
    Playbook(rule({"reset": {"when": "after"}}, op="Remove")).call(remove("v")).expect(Forward(), Reset())
