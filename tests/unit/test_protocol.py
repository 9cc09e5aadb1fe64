from chaosvol.core.protocol import Operation, PluginCall, PluginReply, decode_first_json_value


def test_a_call_keeps_the_exact_bytes_and_parses_what_rules_match_on() -> None:
    body = b'{"Name":"v1","Opts":{"size":"5"}}\n'
    call = PluginCall.parse(Operation.CREATE, body)
    assert (call.body, call.volume, call.opts, call.retry) == (body, "v1", {"size": "5"}, False)


def test_an_empty_body_on_an_endpoint_that_always_has_one_is_dockerds_retry() -> None:
    call = PluginCall.parse(Operation.REMOVE, b"")
    assert call.retry and call.volume is None


def test_activate_has_no_body_and_is_not_a_retry() -> None:
    assert not PluginCall.parse(Operation.ACTIVATE, b"").retry


def test_an_unreadable_body_is_kept_for_the_backend_to_judge() -> None:
    call = PluginCall.parse(Operation.GET, b"not json")
    assert (call.body, call.volume) == (b"not json", None)


def test_keys_are_read_case_insensitively_as_go_does() -> None:
    call = PluginCall.parse(Operation.MOUNT, b'{"name":"v1","id":"abc"}')
    assert (call.volume, call.mount_id) == ("v1", "abc")


def test_only_the_first_json_value_is_read_like_gos_decoder() -> None:
    assert decode_first_json_value(b'{"Err":""}\n{"Err":"second"}') == {"Err": ""}


def test_reply_err_follows_dockerds_rules() -> None:
    assert PluginReply.ok().err is None
    assert PluginReply.json({"Err": "boom"}).err == "boom"
    assert PluginReply.error("x", 500).err == "x"
    assert PluginReply(500, b"Internal Server Error\n").err == "Internal Server Error"
    assert PluginReply(200, b"").err == "EOF"
    assert PluginReply(200, b"<html>").err == "undecodable body"
    assert PluginReply.json({"Volume": None}).err is None


def test_with_fields_replaces_a_key_whatever_its_case() -> None:
    reply = PluginReply.json({"mountpoint": "/a", "Err": ""}).with_fields(Mountpoint="/b")
    assert reply.decoded() == {"Err": "", "Mountpoint": "/b"}


def test_credentials_in_create_options_never_reach_the_event_log_in_clear() -> None:
    from chaosvol.core.events import CallRecord

    record = CallRecord(0.0, 1, 1, "Create", "v", None, None, None, True, None, PluginReply.ok(), 0.001,
                        opts={"size": "1G", "password": "hunter2", "AccessToken": "t", "sshkey": "k"})
    assert record.to_json()["opts"] == {"size": "1G", "password": "<redacted>", "AccessToken": "<redacted>", "sshkey": "<redacted>"}
    assert "hunter2" not in record.to_line()


def test_event_timestamps_are_rfc3339_utc_with_microseconds() -> None:
    from datetime import UTC, datetime

    from chaosvol.core.events import _timestamp

    for unix in (0.0, 1795420800.123456, 1795420800.999999, 1795420801.000001):
        expected = datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert _timestamp(unix) == expected


def test_a_large_success_without_err_is_not_decoded_but_a_large_error_is() -> None:
    import json as _json

    volumes = [{"Name": f"v{i:05d}", "Mountpoint": f"/data/v{i:05d}"} for i in range(5000)]
    big = PluginReply(200, _json.dumps({"Volumes": volumes}).encode() + b"\n")
    assert big.err is None and "decoded" not in big._cache  # never parsed for the log
    failing = PluginReply(200, _json.dumps({"Volumes": volumes, "Err": "disk gone"}).encode())
    assert failing.err == "disk gone"
    truncated = PluginReply(200, big.body[: len(big.body) // 2])
    assert truncated.err == "undecodable body"
    go_style = PluginReply(200, _json.dumps({"Volumes": volumes, "Err": ""}, separators=(",", ":")).encode() + b"\n")
    assert go_style.err is None and "decoded" not in go_style._cache
    # Two values in one body: Go's decoder reads the first, and so do we.
    two_values = PluginReply(200, _json.dumps({"Volumes": volumes, "Err": "disk gone"}).encode() + b'{"a":1,"Err":""}')
    assert two_values.err == "disk gone"
    # An empty Err that closes a nested object proves nothing: the answer is decoded.
    nested = PluginReply(200, _json.dumps({"Err": "disk gone", "Volumes": volumes, "x": {"a": 1, "Err": ""}}, separators=(",", ":")).encode())
    assert nested.err == "disk gone"
