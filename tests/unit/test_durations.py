import pytest

from chaosvol.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("2s", 2.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), ("0s", 0.0), ("100us", 0.0001)],
)
def test_durations_are_read_as_profiles_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2", "", "s", "2 s", "1x", "-1s", "1s2", "ms"])
def test_anything_else_is_refused_with_the_allowed_forms(text: str) -> None:
    with pytest.raises(ValueError, match="250ms, 2s, 1m30s"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 2.0, 90.0, 130.0, 61.5])
def test_format_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
