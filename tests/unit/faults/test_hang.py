from chaosvol.core.effects import Forward, Hang, Sleep
from tests.support.builders import Playbook, create, rule


def test_hang_never_forwards_by_default() -> None:
    Playbook(rule("hang", op="Create")).call(create("v")).expect(Hang())


def test_hang_can_forward_first_or_late() -> None:
    Playbook(rule({"hang": {"forward": "before"}}, op="Create")).call(create("v")).expect(Forward(), Hang())
    play = Playbook(rule({"hang": {"forward": "130s"}}, op="Create"))
    play.call(create("v")).expect(Sleep(130.0), Forward(), Hang())
