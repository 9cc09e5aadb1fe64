from chaosvol.core.effects import Forward, Reply, Rewrite
from chaosvol.core.protocol import PluginReply
from chaosvol.faults.corrupt import GARBAGE, CorruptBody, SetMountpoint
from tests.support.builders import Playbook, create, mount, rule


def test_corrupt_forwards_then_spoils_the_body() -> None:
    play = Playbook(rule({"corrupt": {"body": "garbage"}}, op="Create"))
    play.call(create("v")).expect(Forward(), Rewrite(CorruptBody("garbage")))


def test_each_body_mode_gives_what_dockerd_chokes_on() -> None:
    real = PluginReply.json({"Volume": {"Name": "v"}, "Err": ""})
    assert CorruptBody("empty").apply(real) == PluginReply(200, b"")
    assert CorruptBody("garbage").apply(real).body == GARBAGE
    truncated = CorruptBody("truncated").apply(real)
    assert truncated.status == 200 and real.body.startswith(truncated.body) and len(truncated.body) < len(real.body)
    assert truncated.decoded() is None


def test_mountpoint_rewrites_success_but_leaves_real_failures_visible() -> None:
    edit = SetMountpoint("")
    assert edit.apply(PluginReply.json({"Mountpoint": "/data/v", "Err": ""})).decoded() == {"Err": "", "Mountpoint": ""}
    failure = PluginReply.error("backend said no")
    assert edit.apply(failure) == failure


def test_without_forward_the_backend_never_sees_the_call() -> None:
    play = Playbook(rule({"corrupt": {"mountpoint": "/elsewhere", "forward": False}}, op="Mount"))
    plan = play.call(mount("v")).decision.plan
    assert isinstance(plan.effects[0], Reply) and not plan.forwards
