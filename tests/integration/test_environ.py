"""The environ over the transports: IPv6, unix sockets (SERVER_NAME from
Host, trusted peer), the worker-count flag, a kept connection's peer."""
import json
import os
import re
import socket

import pytest

from helpers import (TEST_PLUGINS, exchange, parse_response, parse_responses,
                     wait_for)

KEEPALIVE = os.path.join(TEST_PLUGINS, "keepalive.so")


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def unix_exchange(path, raw):
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(path)
        c.sendall(raw)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            data = c.recv(65536)
            if not data:
                return out
            out += data


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback")
def test_ipv6_peer_and_server(server):
    s = server("-b", "[::1]:0", app="echo", bind=False, wait=False)
    port = int(wait_for(lambda: (re.search(
        r"Listening at: http://\[::1\]:(\d+) ", s.log()) or [None, None])[1],
        what="the IPv6 listener"))
    with socket.create_connection(("::1", port), timeout=10) as c:
        c.sendall(b"GET /v6 HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        raw = b""
        while True:
            data = c.recv(65536)
            if not data:
                break
            raw += data
        local_port = c.getsockname()[1]
    env = json.loads(parse_response(raw)[2])
    assert env["REMOTE_ADDR"] == "::1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["SERVER_NAME"] == "::1"
    assert env["SERVER_PORT"] == str(port)
    # ::1 is in the default forwarded_allow_ips
    raw = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: "
                   b"https\r\n\r\n", host="::1")
    assert json.loads(parse_response(raw)[2])["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize("klass", ["keepalive", "ev", "gthread"])
def test_unix_socket_environ(server, tmp_path, klass):
    path = str(tmp_path / "nw.sock")
    s = server("-b", "unix:" + path, "-k",
               KEEPALIVE if klass == "keepalive" else klass, app="echo",
               bind=False, wait=False)
    wait_for(lambda: os.path.exists(path) and "Listening at: unix:" + path
             in s.log(), what="the unix socket")
    raw = unix_exchange(path, b"GET /u HTTP/1.1\r\nHost: example.org:8080\r\n"
                              b"\r\n"
                              b"GET /u HTTP/1.1\r\nHost: example.org\r\n"
                              b"X-Forwarded-Proto: https\r\nSCRIPT_NAME: /u"
                              b"\r\n\r\n")
    first = raw.split(b"HTTP/1.1 200 OK")[1]
    second = raw.split(b"HTTP/1.1 200 OK")[2]
    env1 = json.loads(first.partition(b"\r\n\r\n")[2])
    env2 = json.loads(second.partition(b"\r\n\r\n")[2])
    assert env1["SERVER_NAME"] == "example.org"
    assert env1["SERVER_PORT"] == "8080"
    assert env1["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in env1
    # a unix-socket peer is a trusted front-end
    assert env2["wsgi.url_scheme"] == "https"
    assert env2["SERVER_PORT"] == "443"
    assert env2["SCRIPT_NAME"] == "/u"
    assert env2["PATH_INFO"] == ""


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_multiprocess_flag(server, klass):
    threaded = klass == "gthread"
    s = server("-k", klass, "-w", "2", app="echo", workers_ready=2)
    env = json.loads(parse_response(exchange(s.port, b"GET / HTTP/1.1\r\n"
                                             b"Host: x\r\n\r\n"))[2])
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.multithread"] is threaded
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    s = server("-k", klass, "-w", "1", app="echo", workers_ready=1)
    env = json.loads(parse_response(exchange(s.port, b"GET / HTTP/1.1\r\n"
                                             b"Host: x\r\n\r\n"))[2])
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.multithread"] is threaded


def test_bad_forwarded_allow_ips_is_refused_at_start(server):
    from helpers import run
    code, out = run(["-b", "127.0.0.1:0", "--forwarded-allow-ips",
                     "10.0.0.1/8", "echo"])
    assert code == 1
    assert ("Error: forwarded_allow_ips: '10.0.0.1/8' has host bits set"
            in out)
    # the settings layer already refuses what is not an address (exit 2)
    code, out = run(["-b", "127.0.0.1:0", "--proxy-allow-from", "nowhere",
                     "echo"])
    assert code in (1, 2)
    assert "'nowhere' is not an IP address" in out


@pytest.mark.parametrize("klass", ["ev", "gthread", KEEPALIVE])
def test_kept_connection_sees_each_requests_own_headers(server, klass):
    """Header values and the peer are reused along a kept connection only
    while the bytes are the same: a changed Host or User-Agent is seen."""
    s = server("-k", klass, app="echo", workers_ready=1)
    raw = b""
    for host, agent in ((b"a.example", b"one"), (b"a.example", b"one"),
                        (b"b.example:81", b"two"), (b"a.example", b"")):
        raw += (b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: "
                + agent + b"\r\n\r\n")
    envs = [json.loads(body) for _, _, body in parse_responses(
        exchange(s.port, raw))]
    assert [(e["HTTP_HOST"], e["HTTP_USER_AGENT"]) for e in envs] == [
        ("a.example", "one"), ("a.example", "one"),
        ("b.example:81", "two"), ("a.example", "")]
    assert len({(e["REMOTE_ADDR"], e["REMOTE_PORT"]) for e in envs}) == 1
    # a new connection from another port gets its own REMOTE_PORT
    other = json.loads(parse_responses(exchange(s.port, raw[:raw.index(
        b"\r\n\r\n") + 4]))[0][2])
    assert other["REMOTE_PORT"] != envs[0]["REMOTE_PORT"]


@pytest.mark.parametrize("klass", ["ev", "gthread", KEEPALIVE])
def test_each_request_of_a_kept_connection_gets_a_clean_environ(server,
                                                                 klass):
    """An environ the app left alone may be reused for the connection's next
    request: nothing a request or the app did may show in the next one, and
    an environ the app kept is never changed afterwards."""
    s = server("-k", klass, app="environ_use", workers_ready=1)
    reqs = [
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-Gone: 1\r\n\r\n",
        b"GET /change HTTP/1.1\r\nHost: h\r\nX-Gone: 1\r\n\r\n",
        b"GET /b HTTP/1.1\r\nHost: h\r\nX-Gone: 2\r\n\r\n",
        b"POST /keep HTTP/1.1\r\nHost: h\r\nX-Gone: 2\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"PUT /c%20d?q=2 HTTP/1.0\r\nHost: h\r\nX-Gone: 3\r\n"
        b"Connection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        b"GET /e HTTP/1.1\r\nHost: h\r\nX-Other: 4\r\n\r\n",
        b"GET /kept HTTP/1.1\r\nHost: h\r\n\r\n",
    ]
    out = parse_responses(exchange(s.port, b"".join(reqs)))
    assert [status for status, _, _ in out] == [200] * len(reqs)
    envs = [json.loads(body) for _, _, body in out[:-1]]
    # each as a connection of its own would have it
    for raw, env in zip(reqs, envs):
        alone = json.loads(parse_responses(exchange(s.port, raw))[0][2])
        for e in (env, alone):
            del e["REMOTE_PORT"]
        assert env == alone
    assert envs[1]["app.key"] == "set by the app"
    assert "app.key" not in envs[2]
    assert envs[2]["wsgi.url_scheme"] == "http"
    assert envs[2]["HTTP_X_GONE"] == "2"
    assert (envs[4]["REQUEST_METHOD"], envs[4]["PATH_INFO"],
            envs[4]["QUERY_STRING"], envs[4]["SERVER_PROTOCOL"]) == (
        "PUT", "/c d", "q=2", "HTTP/1.0")
    assert (envs[5]["REQUEST_METHOD"], envs[5]["QUERY_STRING"],
            envs[5]["SERVER_PROTOCOL"]) == ("GET", "", "HTTP/1.1")
    assert "HTTP_X_GONE" not in envs[5] and "CONTENT_LENGTH" not in envs[5]
    assert json.loads(out[-1][2]) == [True]
