"""The decision core: rule order, after/times/probability, seeds, and what each plan is."""

from __future__ import annotations

import pytest

from chaosvol.core.effects import Forward, Reply, Sleep
from chaosvol.core.engine import PASS, ChaosEngine, RuleStatistics
from chaosvol.core.protocol import Operation, PluginReply
from tests.support.builders import (
    Playbook,
    activate,
    create,
    empty_retry,
    get,
    injected_error,
    list_,
    mount,
    profile,
    remove,
    rule,
)


def test_remove_fails_after_the_backend_deleted() -> None:
    play = Playbook(rule({"error": {"when": "after"}}, op="Remove", times=1, name="rm-fails"))
    play.at(10.0).call(remove("v1")).expect(Forward(), Reply(injected_error(Operation.REMOVE)))
    play.at(12.5).call(remove("v1")).expect(Forward())
    assert play.engine.statistics().rules["rm-fails"].last_fired_at == 10.0


def test_from_activation_looks_at_no_call_until_the_daemon_has_activated_the_plugin_that_many_times() -> None:
    play = Playbook(rule("error", op="Get", from_activation=2, after=1, times=2, name="restore"))
    play.call(activate()).expect(Forward())
    for _ in range(3):
        play.call(get("v1")).expect(Forward())  # the daemon's first life: not even counted for `after`
    play.call(activate()).expect(Forward())  # it restarted and activates the plugin again
    play.call(get("v1")).expect(Forward())  # after: 1
    assert [play.call(get("v1")).decision.rule for _ in range(3)] == ["restore", "restore", None]
    assert play.engine.statistics().rules["restore"].matched == 4


def test_a_profile_loaded_later_counts_activations_from_what_the_proxy_has_seen() -> None:
    engine = ChaosEngine(profile(rule("error", op="Get", from_activation=2)), activations=1)
    assert engine.decide(get("v1"), now=0.0) is PASS
    engine.decide(activate(), now=0.0)
    assert engine.decide(get("v1"), now=0.0).rule == "rule-0"


def test_no_rule_means_every_call_passes_untouched() -> None:
    engine = ChaosEngine(profile())
    for call in (activate(), create("v"), get("v"), remove("v"), list_()):
        assert engine.decide(call, now=0.0) is PASS


def test_after_lets_the_first_n_matching_calls_through_and_times_caps_the_fires() -> None:
    play = Playbook(rule("drop", op="Remove", after=2, times=2, name="r"))
    plans = [play.call(remove(f"v{i}")).decision.rule for i in range(6)]
    assert plans == [None, None, "r", "r", None, None]
    stats = play.engine.statistics().rules["r"]
    assert (stats.matched, stats.fired) == (6, 2)


def test_the_first_rule_that_fires_decides_and_later_rules_do_not_count_the_call() -> None:
    play = Playbook(
        rule("pass", op="Remove", volume="keep-*", name="shield"),
        rule("drop", op="Remove", name="dropper"),
    )
    play.call(remove("keep-1")).expect(Forward())
    play.call(remove("other")).expect(Reply(PluginReply.ok()))
    stats = play.engine.statistics().rules
    assert (stats["shield"].matched, stats["dropper"].matched) == (1, 1)


def test_a_rule_that_does_not_fire_lets_the_next_rule_decide() -> None:
    play = Playbook(
        rule("drop", op="Remove", times=1, name="once"),
        rule({"error": {"message": "later"}}, op="Remove", name="after-that"),
    )
    assert play.call(remove("a")).decision.rule == "once"
    assert play.call(remove("b")).decision.rule == "after-that"


def test_volume_globs_and_create_options_select_calls() -> None:
    play = Playbook(rule("drop", op="Create", volume="chaos-*", opts={"size": "1G"}, name="r"))
    assert play.call(create("chaos-1", {"size": "1G", "x": "y"})).decision.rule == "r"
    assert play.call(create("chaos-2", {"size": "2G"})).decision.rule is None
    assert play.call(create("calm", {"size": "1G"})).decision.rule is None


def test_a_volume_pattern_never_matches_calls_that_name_no_volume() -> None:
    play = Playbook(rule("error", volume="*", name="r"))
    assert play.call(list_()).decision.rule is None
    assert play.call(empty_retry(Operation.REMOVE)).decision.rule is None
    assert play.call(get("x")).decision.rule == "r"


def test_rules_without_op_never_touch_activate_unless_asked() -> None:
    play = Playbook(rule("error", name="everything"))
    assert play.call(activate()).decision is PASS
    play2 = Playbook(rule({"delay": {"duration": "1s"}}, op="Activate", name="slow-activate"))
    play2.call(activate()).expect(Sleep(1.0), Forward())


def test_probability_draws_from_the_rules_own_seeded_stream() -> None:
    def fired(seed: int) -> list[bool]:
        play = Playbook(rule("drop", op="Remove", probability=0.5, name="half"), seed=seed)
        return [play.call(remove("v")).decision.rule == "half" for _ in range(64)]

    assert fired(1) == fired(1)
    assert fired(1) != fired(2)
    assert 16 < sum(fired(1)) < 48


def test_adding_a_rule_does_not_shift_another_rules_draws() -> None:
    flaky = rule("drop", op="Remove", probability=0.5, name="flaky")
    alone = ChaosEngine(profile(flaky), seed=3)
    with_other = ChaosEngine(profile(rule("error", op="Get", probability=0.5, name="other"), flaky), seed=3)
    calls = [remove("v"), get("v")] * 20
    first = [d.rule for d in (alone.decide(c, now=0) for c in calls) if d.rule == "flaky"]
    second = [d.rule for d in (with_other.decide(c, now=0) for c in calls) if d.rule == "flaky"]
    assert [alone.decide(remove("v"), now=0).rule for _ in range(10)] == [
        with_other.decide(remove("v"), now=0).rule for _ in range(10)
    ]
    assert first == second


def test_the_profile_seed_is_used_unless_overridden() -> None:
    assert ChaosEngine(profile(seed=7)).seed == 7
    assert ChaosEngine(profile(seed=7), seed=9).seed == 9


def test_delay_jitter_is_drawn_and_stays_within_bounds() -> None:
    play = Playbook(rule({"delay": {"duration": "1s", "jitter": "200ms"}}, op="Mount", name="r"), seed=5)
    waits = []
    for _ in range(50):
        sleep = play.call(mount("v")).decision.plan.effects[0]
        assert isinstance(sleep, Sleep)
        waits.append(sleep.seconds)
    assert all(0.8 <= w <= 1.2 for w in waits) and len(set(waits)) > 10


def test_several_actions_run_in_order_around_one_forward() -> None:
    play = Playbook(rule([{"delay": {"duration": "2s"}}, {"error": {"when": "after"}}], op="Create", name="r"))
    play.call(create("v")).expect(Sleep(2.0), Forward(), Reply(injected_error(Operation.CREATE)))
    assert play.decisions[0].action == "delay+error"


def test_paused_rules_count_their_matches_but_never_fire() -> None:
    engine = ChaosEngine(profile(rule("drop", op="Remove", name="d", after=1, times=1)))
    assert engine.decide(remove("v"), now=0, paused=True) is PASS  # matched 1: `after` used up
    assert engine.decide(remove("v"), now=0, paused=True) is PASS  # would have fired: paused
    assert engine.decide(remove("v"), now=0).rule == "d"  # resumed: the third call is the one
    stats = engine.statistics().rules["d"]
    assert (stats.matched, stats.fired) == (3, 1)


def test_a_disabled_rule_is_skipped_and_the_next_one_decides() -> None:
    engine = ChaosEngine(profile(rule("drop", op="Remove", name="first"), rule("error", op="Remove", name="second")))
    engine.set_enabled("first", False)
    assert engine.decide(remove("v"), now=0).rule == "second"
    assert engine.statistics().rules["first"] == RuleStatistics("first", "drop", 0, 0, None, enabled=False)
    engine.set_enabled("first", True)
    assert engine.decide(remove("v"), now=0).rule == "first"


def test_enabling_a_rule_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(KeyError):
        ChaosEngine(profile(rule("drop", name="d")), seed=0).set_enabled("nope", False)
