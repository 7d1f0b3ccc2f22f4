"""The raw-request corpus (http_corpus.txt): each case's status and, for
valid requests, the environ the echo app saw; a pipelined request behind a
valid one is answered by a class that keeps connections, behind a refused
one by nobody."""
import codecs
import json
import os
import shlex
import signal

import pytest

from helpers import TEST_PLUGINS, Server, exchange, parse_responses

CORPUS = os.path.join(os.path.dirname(__file__), "http_corpus.txt")
KEEPALIVE = os.path.join(TEST_PLUGINS, "keepalive.so")


def second_request(case):
    """A valid request to pipeline behind the case's (under SCRIPT_NAME
    when the server has one)."""
    prefix = case["setenv"][1] if case["setenv"][:1] == ("SCRIPT_NAME",) \
        else ""
    return ("GET %s/__second HTTP/1.1\r\nHost: second\r\n\r\n"
            % prefix).encode()


def unescape(text):
    return codecs.escape_decode(text.encode("latin-1"))[0]


def load_corpus(path=CORPUS):
    cases, case = [], None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                case = {"name": line[1:-1], "send": b"", "env": {},
                        "noenv": [], "args": (), "setenv": (),
                        "keepalive": True, "head": False, "line": lineno}
                cases.append(case)
                continue
            key, sep, value = line.partition(" =")
            if not sep or case is None:
                raise ValueError("%s:%d: not 'key = value'" % (path, lineno))
            value = value[1:] if value.startswith(" ") else value
            if key == "send":
                case["send"] += unescape(value)
            elif key == "status":
                case["status"] = [int(v) for v in value.split()]
            elif key.startswith("env."):
                case["env"][key[4:]] = unescape(value).decode("latin-1")
            elif key == "noenv":
                case["noenv"] += value.split()
            elif key == "body":
                case["body"] = unescape(value).decode("latin-1")
            elif key == "args":
                case["args"] = tuple(shlex.split(value))
            elif key == "setenv":
                case["setenv"] = tuple(value.split("=", 1))
            elif key == "keepalive":
                case["keepalive"] = value != "no"
            elif key == "head":
                case["head"] = value == "yes"
            else:
                raise ValueError("%s:%d: unknown key %r" % (path, lineno, key))
    return cases


CASES = load_corpus()


def test_corpus_size():
    valid = [c for c in CASES if c["status"][-1] == 200]
    refused = [c for c in CASES if c["status"][-1] != 200]
    assert len(CASES) >= 80
    assert len(valid) >= 30 and len(refused) >= 40
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server per (worker class, flags, environment), started lazily
    and stopped at the end of the module."""
    started = {}
    tmp = tmp_path_factory.mktemp("corpus")

    def get(klass, args, setenv):
        key = (klass, args, setenv)
        if key not in started:
            env = dict([setenv]) if setenv else None
            started[key] = Server(tmp, ("-k", klass) + args, app="echo",
                                  env=env)
        return started[key]

    yield get
    for s in started.values():
        workers = s.workers()
        s.stop(signal.SIGTERM, timeout=5)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def check_case(case, responses, server):
    want = case["status"]
    got = [r[0] for r in responses[:len(want)]]
    assert got == want, "%s: statuses %s, expected %s\n%s" % (
        case["name"], got, want, server.log()[-2000:])
    status, headers, body = responses[len(want) - 1]
    if status != 200:
        assert headers.get("connection") == "close", headers
        return
    if case["head"]:
        assert body == b""
        return
    env = json.loads(body)
    for key, value in case["env"].items():
        assert env.get(key) == value, "%s: %s is %r, expected %r" % (
            case["name"], key, env.get(key), value)
    for key in case["noenv"]:
        assert key not in env, "%s: %s is in the environ" % (case["name"],
                                                             key)
    if "body" in case:
        assert env["body"] == case["body"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_sync(case, servers):
    s = servers("sync", case["args"], case["setenv"])
    raw = exchange(s.port, case["send"] + second_request(case))
    responses = parse_responses(raw, head_first=case["head"])
    check_case(case, responses, s)
    # the sync class answers one request per connection
    assert len(responses) == len(case["status"])
    assert responses[-1][1].get("connection") == "close"


@pytest.mark.parametrize("klass", ["keepalive", "ev", "gthread"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_keepalive(case, klass, servers):
    """The classes that keep connections: the blocking test class, ev and
    gthread (event mode: the body is read before the app runs)."""
    s = servers(KEEPALIVE if klass == "keepalive" else klass, case["args"],
                case["setenv"])
    raw = exchange(s.port, case["send"] + second_request(case))
    responses = parse_responses(raw, head_first=case["head"])
    check_case(case, responses, s)
    n = len(case["status"])
    if case["status"][-1] == 200 and case["keepalive"]:
        # the framing was understood: the next request is read as one
        assert len(responses) == n + 1, "%s: %d responses" % (
            case["name"], len(responses))
        assert responses[n - 1][1]["connection"] == "keep-alive"
        second = json.loads(responses[n][2])
        assert second["PATH_INFO"] == "/__second"
        assert second["HTTP_HOST"] == "second"
    else:
        # refused (or closing): nothing behind it is answered
        assert len(responses) == n, "%s: %d responses: %r" % (
            case["name"], len(responses), raw[-300:])
        assert responses[-1][1].get("connection") == "close"
        assert b"__second" not in raw and b"smuggled" not in raw
