"""chaosvol's pytest plugin, used from a separate test file the way a user would (pytester runs
it in a fresh pytest process, where only the pytest11 entry point brings the fixtures in)."""

from __future__ import annotations

import pytest

USER_TESTS = r'''
import json, socket

import pytest

from chaosvol.proxy.control import ControlError


def call(path, target, body):
    data = json.dumps(body).encode() + b"\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(b"POST " + target.encode() + b" HTTP/1.1\r\nHost: plugin\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"\n"):
            answer += s.recv(65536)
    head, body = answer.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def test_a_profile_from_a_mapping_drops_removes(chaosvol_proxy):
    chaosvol_proxy.load({"version": 1, "rules": [{"name": "d", "match": {"op": "Remove"}, "action": "drop"}]})
    assert call(chaosvol_proxy.socket, "/VolumeDriver.Create", {"Name": "v", "Opts": {}}) == (200, {"Err": ""})
    assert call(chaosvol_proxy.socket, "/VolumeDriver.Remove", {"Name": "v"}) == (200, {"Err": ""})
    assert chaosvol_proxy.backend_volumes() == ["v"]
    assert [(e["op"], e["rule"]) for e in chaosvol_proxy.events()] == [("Create", None), ("Remove", "d")]
    assert chaosvol_proxy.rules()["d"]["fired"] == 1


def test_the_next_test_starts_in_pass_through_and_sees_only_its_events(chaosvol_proxy):
    assert chaosvol_proxy.events() == [] and chaosvol_proxy.rules() == {}
    assert call(chaosvol_proxy.socket, "/VolumeDriver.Remove", {"Name": "v"}) == (200, {"Err": ""})
    assert chaosvol_proxy.backend_volumes() == []


def test_a_bad_profile_says_where(chaosvol_proxy):
    with pytest.raises(ControlError, match=r"<pytest: text>:3:13: rules\[0\].action: unknown action 'dorp'"):
        chaosvol_proxy.load("version: 1\nrules:\n  - action: dorp\n")


def test_hold_and_release(chaosvol_proxy):
    import threading

    chaosvol_proxy.hold("Get")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(call(chaosvol_proxy.socket, "/VolumeDriver.Get", {"Name": "x"})))
    thread.start()
    (held,) = chaosvol_proxy.wait_held(op="Get", timeout=10)
    assert (held["op"], held["volume"], held["rule"]) == ("Get", "x", "hold") and answers == []
    chaosvol_proxy.release(held["id"])
    thread.join(10)
    assert answers[0][0] == 500 and "no such volume" in answers[0][1]["Err"]
    with pytest.raises(TimeoutError):
        chaosvol_proxy.wait_held(op="Get", timeout=0.2)
'''


def test_a_users_suite_gets_the_proxy_fixture_from_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=120)
    result.assert_outcomes(passed=4)
