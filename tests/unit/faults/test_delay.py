from chaosvol.core.effects import Forward, Sleep
from tests.support.builders import Playbook, mount, rule


def test_delay_before_waits_then_forwards() -> None:
    Playbook(rule({"delay": {"duration": "130s"}}, op="Mount")).call(mount("v")).expect(Sleep(130.0), Forward())


def test_delay_after_forwards_then_waits_before_replying() -> None:
    play = Playbook(rule({"delay": {"duration": "2s", "when": "after"}}, op="Mount"))
    play.call(mount("v")).expect(Forward(), Sleep(2.0))
