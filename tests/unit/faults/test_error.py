from chaosvol.core.effects import Forward, Reply
from chaosvol.core.protocol import Operation, PluginReply
from tests.support.builders import Playbook, create, injected_error, rule


def test_error_before_keeps_the_call_from_the_backend() -> None:
    Playbook(rule("error", op="Create")).call(create("v")).expect(Reply(injected_error(Operation.CREATE)))


def test_error_after_lets_the_backend_act_then_reports_failure() -> None:
    play = Playbook(rule({"error": {"when": "after"}}, op="Create"))
    play.call(create("v")).expect(Forward(), Reply(injected_error(Operation.CREATE)))


def test_status_200_sends_err_in_a_success_status_and_a_message_is_used_as_written() -> None:
    play = Playbook(rule({"error": {"message": "disk on fire", "status": 200}}, op="Create"))
    play.call(create("v")).expect(Reply(PluginReply.json({"Err": "disk on fire"}, 200)))


def test_injected_errors_are_marked_as_such() -> None:
    assert (injected_error(Operation.REMOVE).err or "").startswith("chaosvol: injected:")
