from chaosvol.core.effects import Forward, Rewrite
from chaosvol.core.protocol import PluginReply
from chaosvol.faults.hide import OmitFromList
from tests.support.builders import Playbook, get, list_, rule


def test_hide_says_get_found_nothing_without_asking_the_backend() -> None:
    plan = Playbook(rule("hide", volume="h*")).call(get("h7")).decision.plan
    assert not plan.forwards
    (reply,) = plan.effects
    assert "hide: no such volume: 'h7'" in (reply.reply.err or "")  # type: ignore[union-attr]


def test_hide_filters_list_with_the_rules_volume_pattern() -> None:
    Playbook(rule("hide", volume="h*")).call(list_()).expect(Forward(), Rewrite(OmitFromList("h*")))
    listed = PluginReply.json({"Volumes": [{"Name": "h7"}, {"Name": "keep"}], "Err": ""})
    assert OmitFromList("h*").apply(listed).decoded()["Volumes"] == [{"Name": "keep"}]


def test_other_volumes_gets_are_untouched() -> None:
    assert Playbook(rule("hide", volume="h*")).call(get("other")).decision.rule is None
