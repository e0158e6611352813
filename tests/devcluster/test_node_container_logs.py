"""CRI log files and serving them with the kubelet's options, directly and over HTTP."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from devcluster import container_logs
from devcluster.container_logs import LogOptions, LogWriter, encode_records, parse_records
from devcluster.node_endpoint import NodeEndpoint

STAMP_NS = 1796300000_123456789


def test_records_keep_bytes_and_mark_partial_lines():
    raw = encode_records("stdout", b"one\ntwo\npart", STAMP_NS)
    assert raw.splitlines() == [
        b"2026-12-03T12:13:20.123456789Z stdout F one",
        b"2026-12-03T12:13:20.123456789Z stdout F two",
        b"2026-12-03T12:13:20.123456789Z stdout P part",
    ]
    raw += encode_records("stdout", b"ial\n\xff\n", STAMP_NS)
    assert [line.content for line in parse_records(raw)] == [
        b"one\n",
        b"two\n",
        b"partial\n",
        b"\xff\n",
    ]


def test_long_lines_are_split_and_joined_again():
    line = b"x" * (container_logs.MAX_RECORD_BYTES * 2 + 5) + b"\n"
    raw = encode_records("stderr", line, STAMP_NS)
    assert raw.count(b" P ") == 2
    assert parse_records(raw)[0].content == line


def lines(count: int) -> list[container_logs.LogLine]:
    raw = b"".join(
        encode_records("stdout", f"line {i}\n".encode(), STAMP_NS + i) for i in range(count)
    )
    return parse_records(raw)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (LogOptions(), b"line 0\nline 1\nline 2\nline 3\n"),
        (LogOptions(tail_lines=2), b"line 2\nline 3\n"),
        (LogOptions(tail_lines=0), b""),
        (LogOptions(limit_bytes=10), b"line 0\nlin"),
        (LogOptions(tail_lines=1, timestamps=True), b"2026-12-03T12:13:20.123456792Z line 3\n"),
    ],
)
def test_render_options(options, expected):
    assert container_logs.render(lines(4), options) == expected


def test_since_seconds_keeps_recent_lines():
    recent = parse_records(encode_records("stdout", b"new\n", time.time_ns()))
    old = parse_records(encode_records("stdout", b"old\n", STAMP_NS))
    assert container_logs.render(old + recent, LogOptions(since_seconds=60)) == b"new\n"


def test_options_from_query_reject_bad_numbers():
    assert LogOptions.from_query({"tailLines": "3", "follow": "true"}) == LogOptions(
        tail_lines=3, follow=True
    )
    with pytest.raises(ValueError, match="limitBytes must be positive"):
        LogOptions.from_query({"limitBytes": "0"})
    with pytest.raises(ValueError, match="tailLines must be an integer"):
        LogOptions.from_query({"tailLines": "x"})


def test_writer_stops_at_its_size_limit(tmp_path):
    writer = LogWriter(tmp_path / "c" / "0.log", max_bytes=200)
    for _ in range(10):
        writer.write("stdout", b"0123456789" * 3 + b"\n")
    writer.close()
    contents = b"".join(
        line.content for line in parse_records((tmp_path / "c" / "0.log").read_bytes())
    )
    assert contents.endswith(b"log file reached its size limit; further output dropped\n")
    assert (tmp_path / "c" / "0.log").stat().st_size < 400


@pytest.fixture
def endpoint(tmp_path):
    log_file = tmp_path / "main.log"
    log_file.write_bytes(
        b"".join(encode_records("stdout", f"{i}\n".encode(), STAMP_NS) for i in range(5))
    )
    state = {"finished": False}

    def locate(namespace, pod, container):
        if (namespace, pod, container) == ("ns", "run", "main"):
            return log_file, state["finished"]
        return None

    server = NodeEndpoint(locate, "secret-token", {"pause": lambda _: "paused"})
    server.start()
    yield server, log_file, state
    server.stop()


def get(server, path, token=None, method="GET"):
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}",
        method=method,
        data=b"{}" if method == "POST" else None,
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_endpoint_serves_logs_with_kubelet_parameters(endpoint):
    server, _, _ = endpoint
    assert get(server, "/containerLogs/ns/run/main") == (200, b"0\n1\n2\n3\n4\n")
    assert get(server, "/containerLogs/ns/run/main?tailLines=2&limitBytes=3") == (200, b"3\n4")
    status, _ = get(server, "/containerLogs/ns/other/main")
    assert status == 404
    assert get(server, "/containerLogs/ns/run/main?tailLines=-1")[0] == 400


def test_endpoint_admin_needs_the_token(endpoint):
    server, _, _ = endpoint
    assert get(server, "/admin/pause", method="POST")[0] == 401
    assert get(server, "/admin/pause", token="wrong", method="POST")[0] == 401
    assert get(server, "/admin/pause", token="secret-token", method="POST") == (
        200,
        b'{"result": "paused"}',
    )


def test_logs_can_require_the_token(tmp_path):
    server = NodeEndpoint(lambda *_: (tmp_path / "x", True), "t", {}, logs_need_token=True)
    server.start()
    try:
        assert get(server, "/containerLogs/ns/run/main")[0] == 401
    finally:
        server.stop()


def test_follow_streams_new_output_until_the_container_finishes(endpoint):
    server, log_file, state = endpoint
    received = []

    def reader():
        received.append(get(server, "/containerLogs/ns/run/main?follow=true&tailLines=1"))

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    with open(log_file, "ab") as out:
        out.write(encode_records("stdout", b"late\n", STAMP_NS))
    time.sleep(0.3)
    state["finished"] = True
    thread.join(10)
    assert received == [(200, b"4\nlate\n")]
