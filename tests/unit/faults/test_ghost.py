from chaosvol.core.effects import Forward, Rewrite
from chaosvol.core.protocol import PluginReply
from chaosvol.faults.ghost import AddToList
from tests.support.builders import Playbook, get, list_, rule


def test_ghosts_are_added_to_list_once() -> None:
    play = Playbook(rule({"ghost": {"names": ["g7", "keep"]}}))
    play.call(list_()).expect(Forward(), Rewrite(AddToList(("g7", "keep"))))
    listed = PluginReply.json({"Volumes": [{"Name": "keep"}], "Err": ""})
    assert AddToList(("g7", "keep")).apply(listed).decoded()["Volumes"] == [{"Name": "keep"}, {"Name": "g7"}]


def test_get_of_a_ghost_answers_a_volume_and_other_gets_are_forwarded() -> None:
    play = Playbook(rule({"ghost": {"names": ["g7"]}}))
    ghost = play.call(get("g7")).decision.plan
    assert not ghost.forwards
    volume = ghost.effects[0].reply.decoded()["Volume"]  # type: ignore[union-attr]
    assert volume["Name"] == "g7" and "ghost" in volume["Status"]["chaosvol"]
    assert volume["Mountpoint"] == "/nonexistent/chaosvol-ghost/g7"  # as a real plugin's Get, with a path nothing backs
    play.call(get("real")).expect(Forward())
