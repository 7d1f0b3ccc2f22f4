"""The response side end to end: framing, no-body statuses, write(),
header validation, exc_info, hop-by-hop headers, close(), file_wrapper
with and without sendfile(), wsgi.input's methods, 100 Continue."""
import os
import re
import socket
import time

import pytest

from helpers import (TEST_PLUGINS, exchange, parse_response, parse_responses,
                     wait_for)

KEEPALIVE = os.path.join(TEST_PLUGINS, "keepalive.so")
SECOND = b"GET /__second HTTP/1.1\r\nHost: x\r\n\r\n"
# the classes on the core's event-mode connections: a body is read whole
# before the app runs
EVENT_MODE = ("ev", "gthread")


def req(path, method="GET", version="1.1", headers=b"", body=b""):
    return (("%s %s HTTP/%s\r\nHost: x\r\n" % (method, path, version))
            .encode() + headers + b"\r\n" + body)


def class_args(klass):
    """-k for a worker class name of these tests."""
    return ("-k", KEEPALIVE) if klass == "keepalive" else ("-k", klass)


@pytest.fixture(params=["sync", "ev"])
def sync(server, tmp_path, request):
    """The tests' server: the sync class and the ev class."""
    s = server(*class_args(request.param), app="responses:app", env={
        "NARWHAL_TEST_CLOSE_LOG": str(tmp_path / "closed")})
    s.klass = request.param
    return s


@pytest.fixture(params=["keepalive", "ev", "gthread"])
def kept(server, tmp_path, request):
    """A class that keeps connections: the blocking test class, ev and
    gthread."""
    s = server(*class_args(request.param), app="responses:app", env={
        "NARWHAL_TEST_CLOSE_LOG": str(tmp_path / "closed")})
    s.klass = request.param
    return s


def closed_marks(tmp_path):
    try:
        with open(tmp_path / "closed") as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_short_body_closes_and_is_logged(kept):
    raw = exchange(kept.port, req("/cl?n=10&send=4") + SECOND)
    (status, headers, body), = parse_responses(raw)
    assert status == 200 and headers["content-length"] == "10"
    assert body == b"aabb"
    wait_for(lambda: "shorter than its Content-Length (4 of 10 bytes)"
             in kept.log(), what="the log line")


def test_long_body_is_cut_at_content_length(kept):
    raw = exchange(kept.port, req("/cl?n=4&send=10") + SECOND)
    responses = parse_responses(raw)
    assert len(responses) == 1, raw
    assert responses[0][2] == b"aaaa"
    assert raw.endswith(b"aaaa")
    wait_for(lambda: "longer than its Content-Length (4)" in kept.log(),
             what="the log line")


def test_exact_content_length_keeps_the_connection(kept):
    raw = exchange(kept.port, req("/cl?n=6&send=6") + SECOND)
    first, second = parse_responses(raw)
    assert first[2] == b"aaabbb"
    assert first[1]["connection"] == "keep-alive"
    assert second[0] == 404


def test_chunked_without_length_on_http11(kept):
    raw = exchange(kept.port, req("/chunks") + SECOND)
    first, second = parse_responses(raw)
    assert first[1]["transfer-encoding"] == "chunked"
    assert "content-length" not in first[1]
    assert first[2] == b"one,two,three"
    assert b"\r\n0\r\n\r\n" in raw  # the empty chunk was not sent as "0"
    assert raw.count(b"\r\n0\r\n\r\n") == 1
    assert second[0] == 404


def test_http10_without_length_is_close_delimited(kept):
    raw = exchange(kept.port, req("/chunks", version="1.0",
                                  headers=b"Connection: keep-alive\r\n")
                   + SECOND)
    (status, headers, body), = parse_responses(raw)
    assert raw.startswith(b"HTTP/1.0 200 ")
    assert "transfer-encoding" not in headers
    assert headers["connection"] == "close"
    assert body == b"one,two,three"


def test_head_sends_headers_only(kept):
    raw = exchange(kept.port, req("/chunks", method="HEAD")
                   + req("/cl?n=3&send=3", method="HEAD") + SECOND)
    first, second, third = split_head_responses(raw)
    assert first[2] == b"" and "transfer-encoding" not in first[1]
    assert second[1]["content-length"] == "3" and second[2] == b""
    assert third[0] == 404


def split_head_responses(raw):
    """Two HEAD responses then a normal one."""
    out = []
    for _ in range(2):
        head, _, raw = raw.partition(b"\r\n\r\n")
        out.append(parse_response(head + b"\r\n\r\n")[:2] + (b"",))
    out.extend(parse_responses(raw))
    return out


@pytest.mark.parametrize("code,has_cl", [("204", False), ("304", True)])
def test_no_body_statuses(kept, code, has_cl):
    raw = exchange(kept.port, req("/status?code=%s&cl=1" % code) + SECOND)
    first, second = parse_responses(raw)
    assert first[0] == int(code)
    assert first[2] == b""
    assert ("content-length" in first[1]) == has_cl
    assert "transfer-encoding" not in first[1]
    assert b"body" not in raw
    assert second[0] == 404


def test_date_server_and_version(sync):
    raw = exchange(sync.port, req("/chunks"))
    status, headers, _ = parse_response(raw)
    assert headers["server"] == "narwhal"
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$",
                    headers["date"])
    assert raw.startswith(b"HTTP/1.1 200 OK\r\nServer: narwhal\r\nDate: ")


@pytest.mark.parametrize("klass", ["sync", "keepalive", "ev"])
def test_write_callable(server, klass):
    s = server(*class_args(klass), app="responses:app")
    assert parse_response(exchange(s.port, req("/write")))[2] \
        == b"written-returned"
    assert parse_response(exchange(s.port, req("/write-gen")))[2] \
        == b"w1-y1-w2-y2"


@pytest.mark.parametrize("query", [
    "value=aCRLFSet-Cookie:%20pwned=1", "value=aLFb", "value=aCRb",
    "value=aNULb", "name=X-BadCRLFSet-Cookie", "name=Bad%20Name",
    "name=NULname"])
def test_bad_header_is_refused_never_written(sync, query):
    raw = exchange(sync.port, req("/bad-header?" + query))
    status, headers, body = parse_response(raw)
    assert status == 500
    assert b"pwned" not in raw and b"never" not in raw
    assert b"Set-Cookie" not in raw
    wait_for(lambda: "Error handling request /bad-header" in sync.log(),
             what="the error log")
    assert "ValueError" in sync.log()


def test_bad_status_is_refused(sync):
    raw = exchange(sync.port, req("/bad-status?s=200%20OKCRLFX-Evil:%201"))
    assert parse_response(raw)[0] == 500
    assert b"X-Evil" not in raw


def test_exc_info_before_the_head_replaces_it(sync):
    status, headers, body = parse_response(exchange(sync.port,
                                                    req("/exc-before")))
    assert status == 503
    assert headers["x-second"] == "2" and "x-first" not in headers
    assert body == b"app error page"


def test_exc_info_after_the_head_is_reraised(sync):
    raw = exchange(sync.port, req("/exc-after"))
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n")  # cut short: the close says so
    wait_for(lambda: "ValueError: too late" in sync.log(),
             what="the traceback")


def test_start_response_twice(sync):
    assert parse_response(exchange(sync.port, req("/twice")))[0] == 500
    wait_for(lambda: "Response headers already set" in sync.log(),
             what="the traceback")


def test_hop_by_hop_headers_are_dropped(sync):
    raw = exchange(sync.port, req("/hop"))
    status, headers, body = parse_response(raw)
    assert body == b"ok"
    for name in ("keep-alive", "transfer-encoding", "upgrade", "te",
                 "trailers", "proxy-authenticate"):
        assert name not in headers, name
    assert headers["server"] == "narwhal"
    assert headers["date"] != "yesterday"
    # narwhal's own Connection header, whatever the app said
    assert headers["connection"] == ("close" if sync.klass == "sync"
                                     else "keep-alive")
    assert headers["x-kept"] == "yes"
    assert raw.count(b"Connection:") == 1
    _, headers, _ = parse_response(exchange(sync.port,
                                            req("/websocket-upgrade")))
    assert headers["upgrade"] == "websocket"


def test_close_is_always_called(sync, tmp_path):
    assert parse_response(exchange(sync.port, req("/tracked")))[2] == b"abc"
    raw = exchange(sync.port, req("/tracked-fail"))
    assert raw.startswith(b"HTTP/1.1 200") and not raw.endswith(b"0\r\n\r\n")
    assert parse_response(exchange(sync.port,
                                   req("/tracked-first-fail")))[0] == 500
    # a client that leaves in the middle of a long response
    with socket.create_connection(("127.0.0.1", sync.port)) as c:
        c.sendall(req("/tracked-slow"))
        c.recv(1000)
    wait_for(lambda: sorted(closed_marks(tmp_path))
             == ["fail", "first-fail", "ok", "slow"], timeout=10,
             what="close() calls: %s" % closed_marks(tmp_path))
    assert "RuntimeError: failing on purpose at chunk 1" in sync.log()


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 400)  # 102400 bytes
    return path


@pytest.mark.parametrize("klass", ["keepalive", "ev"])
@pytest.mark.parametrize("sendfile", [True, False])
def test_file_wrapper_offset_and_length(server, data_file, sendfile, klass):
    args = class_args(klass) + (() if sendfile else ("--no-sendfile",))
    s = server(*args, app="responses:app")
    data = data_file.read_bytes()
    raw = exchange(s.port, req("/file?path=%s&offset=1000&length=5000"
                               % data_file)
                   + req("/file?path=%s&offset=100000" % data_file)
                   + SECOND)
    first, second, third = parse_responses(raw)
    assert first[1]["content-length"] == "5000"
    assert first[2] == data[1000:6000]
    assert second[1]["transfer-encoding"] == "chunked"
    assert second[2] == data[100000:]
    assert third[0] == 404


@pytest.mark.parametrize("klass", ["sync", "ev"])
def test_sendfile_is_used_and_can_be_turned_off(server, data_file, klass):
    s = server(*class_args(klass), app="responses:app")
    raw = exchange(s.port, req("/file-noread?path=%s&offset=10" % data_file))
    assert parse_response(raw)[2] == data_file.read_bytes()[10:]
    s2 = server(*class_args(klass), "--no-sendfile", app="responses:app")
    raw = exchange(s2.port, req("/file-noread?path=%s" % data_file))
    assert parse_response(raw)[0] == 500
    wait_for(lambda: "sendfile was not used" in s2.log(), what="the error")


def test_file_wrapper_without_a_file(sync):
    assert parse_response(exchange(sync.port, req("/file-bytesio")))[2] \
        == b"in memory"


def test_head_of_a_file(kept, data_file):
    raw = exchange(kept.port, req("/file?path=%s&length=10" % data_file,
                                  method="HEAD") + SECOND)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 10" in head
    assert parse_responses(rest)[0][0] == 404


def test_input_readline_readlines_iteration(sync):
    body = b"line1\nabcdef\nx\ny\nz"
    raw = exchange(sync.port, req("/lines", method="POST",
                                  headers=b"Content-Length: %d\r\n"
                                  % len(body), body=body))
    assert parse_response(raw)[2] == repr(
        [b"line1\n", b"abc", b"def\n", [b"x\n"], [b"y\n", b"z"]]).encode()
    chunked = b"3\r\nlin\r\n9\r\ne1\nabcdef\r\n6\r\n\nx\ny\nz\r\n0\r\n\r\n"
    raw = exchange(sync.port, req("/lines", method="POST",
                                  headers=b"Transfer-Encoding: chunked\r\n",
                                  body=chunked))
    assert parse_response(raw)[2] == repr(
        [b"line1\n", b"abc", b"def\n", [b"x\n"], [b"y\n", b"z"]]).encode()
    raw = exchange(sync.port, req("/read-sizes", method="POST",
                                  headers=b"Content-Length: 6\r\n",
                                  body=b"abcdef"))
    assert parse_response(raw)[2] == repr(
        [b"", b"a", b"bc", b"def", b""]).encode()


def test_unread_body_is_drained_for_keep_alive(kept):
    raw = exchange(kept.port, req("/no-read", method="POST",
                                  headers=b"Content-Length: 1000\r\n",
                                  body=b"x" * 1000) + SECOND)
    first, second = parse_responses(raw)
    assert first[2] == b"ok" and second[0] == 404


def test_large_unread_body_closes(kept):
    body = b"x" * (1024 * 1024)
    raw = exchange(kept.port, req("/no-read", method="POST",
                                  headers=b"Content-Length: %d\r\n"
                                  % len(body), body=body) + SECOND)
    responses = parse_responses(raw)
    assert responses[0][2] == b"ok"
    if kept.klass in EVENT_MODE:
        # the body was read before the app ran: the connection goes on
        assert len(responses) == 2 and responses[1][0] == 404
    else:
        assert len(responses) == 1


def test_100_continue_is_sent_when_the_app_reads(kept):
    with socket.create_connection(("127.0.0.1", kept.port), timeout=10) as c:
        c.sendall(req("/upload", method="POST",
                      headers=b"Expect: 100-continue\r\n"
                      b"Content-Length: 5\r\n"))
        assert c.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.sendall(b"hello")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"5d41402abc4b2a76b9719d911017c592"):
            data += c.recv(1000)
        assert parse_response(data)[2].startswith(b"5 ")
        if kept.klass in EVENT_MODE:
            # the body is read before the app runs: always asked for
            c.sendall(req("/no-read", method="POST",
                          headers=b"Expect: 100-continue\r\n"
                          b"Content-Length: 5\r\n"))
            assert c.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            c.sendall(b"hello")
            data = b""
            while not data.endswith(b"ok"):
                chunk = c.recv(1000)
                assert chunk, data
                data += chunk
            assert parse_response(data)[2] == b"ok"
            return
        # the app that does not read gets no 100 and the client sends
        # nothing: the connection is then closed
        c.sendall(req("/no-read", method="POST",
                      headers=b"Expect: 100-continue\r\n"
                      b"Content-Length: 5\r\n"))
        data = b""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            chunk = c.recv(1000)
            if not chunk:
                break
            data += chunk
        assert b"100 Continue" not in data
        assert parse_response(data)[2] == b"ok"


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_bad_chunked_body_is_refused_before_the_app_runs(server, tmp_path,
                                                         klass):
    calls = tmp_path / "calls"
    s = server(*class_args(klass), app="responses:app",
               env={"NARWHAL_TEST_CALL_LOG": str(calls)})
    bad = req("/upload", method="POST",
              headers=b"Transfer-Encoding: chunked\r\n",
              body=b"5\r\nhello\r\n3;x\ny\r\nabc\r\n0\r\n\r\n")
    raw = exchange(s.port, bad)
    assert parse_response(raw)[0] == 400
    assert not calls.exists() or "/upload" not in calls.read_text()
    if klass in EVENT_MODE:
        # these classes read every body before the app: the bad chunk
        # is refused whenever it arrives, and the app never runs
        with socket.create_connection(("127.0.0.1", s.port),
                                      timeout=10) as c:
            head, _, body = bad.partition(b"\r\n\r\n")
            c.sendall(head + b"\r\n\r\n")
            time.sleep(0.3)
            c.sendall(body)
            raw = b""
            while True:
                data = c.recv(65536)
                if not data:
                    break
                raw += data
        assert parse_response(raw)[0] == 400
        assert b"Invalid character in chunk extensions" in raw
        assert not calls.exists() or "/upload" not in calls.read_text()
        return
    # a bad chunk that arrives after the app started reading: the refusal
    # replaces the app's response
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        head, _, body = bad.partition(b"\r\n\r\n")
        c.sendall(head + b"\r\n\r\n")
        wait_for(lambda: calls.exists() and "/upload" in calls.read_text(),
                 what="the app to run")
        c.sendall(body)
        raw = b""
        while True:
            data = c.recv(65536)
            if not data:
                break
            raw += data
    assert parse_response(raw)[0] == 400
    assert b"Invalid character in chunk extensions" in raw


@pytest.mark.parametrize("klass", ["keepalive", "ev"])
def test_keepalive_setting(server, klass):
    # 0 turns keep-alive off even for a class that keeps connections
    s = server(*class_args(klass), "--keep-alive", "0", app="responses:app")
    raw = exchange(s.port, req("/cl?n=2&send=2") + SECOND)
    responses = parse_responses(raw)
    assert len(responses) == 1
    assert responses[0][1]["connection"] == "close"
    # an idle kept connection is closed after `keepalive` seconds
    s = server(*class_args(klass), "--keep-alive", "1", app="responses:app")
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as c:
        c.sendall(req("/cl?n=2&send=2"))
        data = b""
        while not data.endswith(b"\r\n\r\nab"):
            chunk = c.recv(1000)
            assert chunk, data
            data += chunk
        # the response is complete: from here the connection is idle
        t0 = time.monotonic()
        assert c.recv(1000) == b""
        waited = time.monotonic() - t0
    assert parse_responses(data)[0][1]["connection"] == "keep-alive"
    assert 0.5 < waited < 5
