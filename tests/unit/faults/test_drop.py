from chaosvol.core.effects import Reply
from chaosvol.core.protocol import PluginReply
from tests.support.builders import Playbook, remove, rule


def test_drop_answers_success_and_never_forwards() -> None:
    play = Playbook(rule("drop", op="Remove"))
    play.call(remove("v1")).expect(Reply(PluginReply.ok()))
    assert PluginReply.ok().body == b'{"Err":""}\n'
