from chaosvol.core.effects import Forward
from tests.support.builders import Playbook, get, rule


def test_pass_forwards_and_counts() -> None:
    play = Playbook(rule("pass", op="Get", name="p"))
    play.call(get("v")).expect(Forward())
    assert play.engine.statistics().rules["p"].fired == 1
