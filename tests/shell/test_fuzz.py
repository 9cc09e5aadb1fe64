"""Fuzzing the daemon-facing layer and the profile loader with hypothesis.

Bounded in CI (the default settings); a longer run: HYPOTHESIS_PROFILE=long scripts/test tests/shell/test_fuzz.py
"""

from __future__ import annotations

import json

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import parse_profile
from chaosvol.core.protocol import Operation
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from tests.support.builders import profile, rule
from tests.support.fakes import RecordingBackend

TARGETS = [op.target for op in Operation] + ["/VolumeDriver.Snapshot", "/", "/Plugin.Activate/x"]
BODIES = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v: json.dumps(v).encode(), st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["Name", "ID", "Opts", "x"]), children, max_size=3),
        max_leaves=8,
    )),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    body = draw(BODIES)
    method = draw(st.sampled_from([b"POST", b"POST", b"GET"]))
    target = draw(st.sampled_from(TARGETS)).encode()
    headers = [b"Host: ", b"Content-Length: " + str(len(body)).encode()]
    if draw(st.booleans()):
        headers.append(b"Content-Type: application/json")
    return method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(requests(), min_size=1, max_size=6), st.integers(min_value=1, max_value=7))
def test_every_complete_request_gets_an_answer_and_the_server_stays_up(batch: list[bytes], chunk: int) -> None:
    async def main() -> None:
        rules = profile(rule({"error": {"when": "after"}}, op="Remove"), rule({"corrupt": {"body": "truncated"}}, op="Get"))
        server = PluginServer(ProxyState(ServeSettings("f", "/x", "r"), RecordingBackend(), ChaosEngine(rules)))
        client, server_side = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_connection, server_side, 1)
            data = b"".join(batch)
            for i in range(0, len(data), chunk):
                await client.send_all(data[i : i + chunk])
            received = b""
            with trio.fail_after(5):
                while received.count(b"HTTP/1.1 ") < len(batch):
                    piece = await client.receive_some(65536)
                    assert piece, f"closed after {received.count(b'HTTP/1.1 ')} of {len(batch)} answers"
                    received += piece
            await client.aclose()
        assert server.state.in_flight == 0

    trio.run(main)


@given(st.text(max_size=400))
def test_the_loader_only_ever_raises_its_own_error_on_any_text(text: str) -> None:
    try:
        parse_profile(text, "fuzz.yaml")
    except ProfileError as exc:
        assert all(p.position.file == "fuzz.yaml" for p in exc.problems)


ACTION_WORDS = st.sampled_from(["drop", "pass", "hide", "error", "delay", "hang", "reset", "corrupt", "ghost", "crash", "x"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 500) | st.floats(allow_nan=True) | st.sampled_from(["1s", "250ms", "before", "after", "never", "Remove", "v*", ""]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["duration", "when", "status", "names", "body", "op", "volume", "forward", "restart"]), children, max_size=3),
    max_leaves=10,
)


@given(st.lists(st.fixed_dictionaries({"match": VALUES, "action": st.one_of(ACTION_WORDS, st.dictionaries(ACTION_WORDS, VALUES, max_size=1))}, optional={"times": VALUES, "after": VALUES, "probability": VALUES}), max_size=4))
def test_the_loader_only_ever_raises_its_own_error_on_valid_looking_profiles(rules: list[dict[str, object]]) -> None:
    import yaml

    text = yaml.safe_dump({"version": 1, "rules": rules})
    try:
        parse_profile(text, "fuzz.yaml")
    except ProfileError:
        pass
