"""The audit's verdict where dockerd retries or forces, against a real dockerd: a create cut
and retried (cases C, P, A), a forced remove after a failed one (case L). Each asserts what
dockerd does (exit status), then the one right verdict."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Scenario, on_each_dockerd

pytestmark = on_each_dockerd()


def profile(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text("version: 1\nrules:\n" + text)
    return str(path)


def test_case_c_a_create_cut_after_the_backend_made_it_and_its_retry_answered_success_is_consistent(scenario: Scenario, tmp_path: Path) -> None:
    volume = scenario.volume("cvc")
    proxy = scenario.start(profile(tmp_path, """\
  - {name: cut, match: {op: Create, volume: "cvc-*", retry: false}, times: 1, action: {reset: {when: after}}}
  - {name: answer-the-retry, match: {op: Create, volume: "cvc-*", retry: true}, times: 1, action: drop}
"""))
    assert scenario.docker("volume", "create", "-d", scenario.name, "--label", "k=v", volume, check=False).returncode == 0
    retried = [e for e in proxy.events() if e["op"] == "Create" and e["retry"]]
    assert [(e["retry_of"] is not None, e["volume"], e["rule"]) for e in retried] == [(True, volume, "answer-the-retry")]
    assert scenario.audit() == []
    assert '"k":"v"' in scenario.docker("volume", "inspect", volume, "--format", "{{json .Labels}}").stdout


def test_case_p_a_create_cut_before_the_backend_and_its_retry_answered_success_leaves_a_phantom(scenario: Scenario, tmp_path: Path) -> None:
    volume = scenario.volume("cvp")
    scenario.start(profile(tmp_path, """\
  - {name: cut, match: {op: Create, volume: "cvp-*", retry: false}, times: 1, action: {reset: {when: before}}}
  - {name: answer-the-retry, match: {op: Create, volume: "cvp-*", retry: true}, times: 1, action: drop}
"""))
    assert scenario.docker("volume", "create", "-d", scenario.name, volume, check=False).returncode == 0
    assert not (scenario.backend_root / "volumes" / volume).exists()
    assert scenario.audit() == [("stale-in-daemon", volume)]


def test_case_a_a_failed_create_that_left_a_volume_behind_stays_reported_after_readoption(scenario: Scenario, tmp_path: Path) -> None:
    volume = scenario.volume("cva")
    scenario.start(profile(tmp_path, """\
  - {name: cut, match: {op: Create, volume: "cva-*"}, times: 1, action: {reset: {when: after}}}
"""))
    created = scenario.docker("volume", "create", "-d", scenario.name, "--label", "k=v", volume, check=False)
    assert created.returncode == 1, created  # the retry's empty body was refused by the backend
    assert (scenario.backend_root / "volumes" / volume).exists()
    assert scenario.audit() == [("unknown-to-daemon", volume)]  # dockerd was never told it was created
    scenario.docker("volume", "inspect", volume)  # dockerd adopts it again, without its label
    assert scenario.audit() == [("metadata-lost", volume)]


def test_case_l_a_forced_remove_after_a_failed_remove_loses_the_labels_and_is_reported(scenario: Scenario, tmp_path: Path) -> None:
    volume = scenario.volume("cvl")
    scenario.start(profile(tmp_path, """\
  - {name: remove-fails, match: {op: Remove, volume: "cvl-*"}, action: {error: {when: before}}}
"""))
    scenario.docker("volume", "create", "-d", scenario.name, "--label", "k=v", volume)
    assert scenario.docker("volume", "rm", "-f", volume, check=False).returncode == 1
    assert scenario.audit() == [("metadata-lost", volume), ("unknown-to-daemon", volume)]  # no record left: its labels went with it
    plain = scenario.volume("cvl")
    scenario.docker("volume", "create", "-d", scenario.name, "--label", "k=v", plain)
    assert scenario.docker("volume", "rm", plain, check=False).returncode == 1  # without -f dockerd keeps its record
    assert scenario.audit() == [("metadata-lost", volume), ("unknown-to-daemon", volume)]  # the forced one only
