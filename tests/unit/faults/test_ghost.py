import pytest

from chaosvol.core.effects import Forward, Rewrite
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import parse_profile
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


def test_without_names_the_volume_a_get_asks_for_exists_and_list_is_refused() -> None:
    play = Playbook(rule({"ghost": {}}, op="Get"))
    for name in ("a", "b"):
        volume = play.call(get(name)).decision.plan.effects[0].reply.decoded()["Volume"]  # type: ignore[union-attr]
        assert volume["Name"] == name and "ghost" in volume["Status"]["chaosvol"]
    with pytest.raises(ProfileError, match="ghost without names makes the volume a Get asks for exist; List needs names"):
        parse_profile('{"version": 1, "rules": [{"match": {"op": "List"}, "action": "ghost"}]}', "p")
    with pytest.raises(ProfileError, match="List needs names"):
        parse_profile('{"version": 1, "rules": [{"action": "ghost"}]}', "p")  # no op: Get and List
