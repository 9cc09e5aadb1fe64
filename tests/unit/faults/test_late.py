import pytest

from chaosvol.core.effects import Forward, Sleep
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import parse_profile
from tests.support.builders import Playbook, create, get, list_, mount, remove, rule, unmount


def test_each_operation_is_late_past_its_own_dockerd_timeout() -> None:
    play = Playbook(rule("late", op=["Create", "Mount", "Remove", "Unmount", "Get", "List"]))
    play.call(create("v")).expect(Sleep(121.0), Forward())
    play.call(mount("v")).expect(Sleep(121.0), Forward())
    play.call(remove("v")).expect(Sleep(61.0), Forward())
    play.call(unmount("v")).expect(Sleep(61.0), Forward())
    play.call(get("v")).expect(Sleep(61.0), Forward())
    play.call(list_()).expect(Sleep(61.0), Forward())


def test_after_forwards_at_once_and_answers_late() -> None:
    Playbook(rule({"late": {"when": "after"}}, op="Mount")).call(mount("v")).expect(Forward(), Sleep(121.0))


def test_podman_is_late_after_its_five_seconds_for_every_operation() -> None:
    play = Playbook(rule({"late": {"daemon": "podman", "margin": "500ms"}}, op=["Create", "Remove"]))
    play.call(create("v")).expect(Sleep(5.5), Forward())
    play.call(remove("v")).expect(Sleep(5.5), Forward())


def test_activate_has_no_timeout_so_late_is_refused_on_it() -> None:
    with pytest.raises(ProfileError, match="late"):
        parse_profile("version: 1\nrules:\n  - {match: {op: Activate}, action: late}\n", "p.yaml")


def test_an_unknown_daemon_is_refused_with_the_choices() -> None:
    with pytest.raises(ProfileError, match="expected one of dockerd, podman"):
        parse_profile("version: 1\nrules:\n  - {match: {op: Create}, action: {late: {daemon: crio}}}\n", "p.yaml")
