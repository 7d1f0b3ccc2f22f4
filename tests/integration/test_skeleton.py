"""The walking skeleton end to end: the real binary, the sync worker, one
request per connection, workers replaced, clear failures."""
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from helpers import (APPS, LOG_LINE, alive, get, http, parse_response, run,
                     wait_for)


def test_hello_world(server):
    s = server()
    status, headers, body = get(s.port)
    assert status == 200
    assert body == b"Hello, World!\n"
    assert headers["server"] == "narwhal"
    assert headers["connection"] == "close"
    assert headers["content-length"] == "14"
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$",
                    headers["date"])


def test_log_lines_in_gunicorn_format(server):
    s = server()
    get(s.port)
    lines = s.log_lines()
    for line in lines:
        assert LOG_LINE.match(line), line
    messages = [LOG_LINE.match(l).group(3) for l in lines]
    assert messages[0] == "Starting narwhal 0.1.0"
    assert re.match(r"Listening at: http://127\.0\.0\.1:\d+ \(%d\)$" % s.pid,
                    messages[1])
    assert messages[2] == "Using worker: sync"
    worker = s.workers()[0]
    assert "Booting worker with pid: %d" % worker in messages
    # the worker logs under its own pid
    assert any(LOG_LINE.match(l).group(1) == str(worker)
               and "Booting worker" in l for l in lines)


def test_three_workers_all_serve(server, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    s = server("-w", "3", env={"NARWHAL_TEST_MARK_DIR": str(marks)},
               workers_ready=3)
    workers = s.workers()
    assert len(workers) == 3
    wait_for(lambda: len(os.listdir(marks)) == 3, what="3 apps imported")
    # three slow requests at once: a sync worker serves one at a time, so
    # each must land on a different worker
    pids = []

    def slow():
        pids.append(int(get(s.port, "/sleep?0.6")[2]))

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(pids) == sorted(workers)


def test_killed_worker_is_replaced(server):
    s = server("-w", "2", workers_ready=2)
    before = s.workers()
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    after = wait_for(lambda: (lambda w: w if len(w) == 2 and victim not in w
                              else None)(s.workers()),
                     timeout=2.0, what="a replacement worker")
    assert time.monotonic() - t0 < 2.0
    assert before[1] in after
    for _ in range(10):
        assert get(s.port)[0] == 200
    assert ("Worker (pid:%d) was sent SIGKILL! Perhaps out of memory?"
            % victim) in s.log()


@pytest.mark.parametrize("sig,name", [(signal.SIGINT, "int"),
                                      (signal.SIGTERM, "term"),
                                      (signal.SIGQUIT, "quit")])
def test_stop_signals_stop_all_workers(server, sig, name):
    s = server("-w", "2", workers_ready=2)
    get(s.port)
    workers = s.workers()
    s.send(sig)
    assert s.wait(timeout=10) == 0
    for pid in workers:
        wait_for(lambda: not alive(pid), timeout=5, what="worker %d" % pid)
    log = s.log()
    assert "Handling signal: %s" % name in log
    assert "Shutting down: Master" in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=1)


def test_post_body_and_environ(server):
    s = server(app="echo")
    raw = http(s.port, b"POST /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.org"
               b"\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
               b"X-Custom: one\r\nX-Custom: two\r\n\r\nhello world")
    status, headers, body = parse_response(raw)
    assert status == 200
    env = json.loads(body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/a%20b/c?x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "11"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_HOST"] == "example.org"
    assert env["HTTP_X_CUSTOM"] == "one,two"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(s.port)
    assert env["SCRIPT_NAME"] == ""
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["body"] == "hello world"
    assert env["SERVER_SOFTWARE"] == "narwhal/0.1.0"


def test_missing_module_exits_4():
    code, out = run(["-b", "127.0.0.1:0", "nosuchmodule:app"])
    assert code == 4
    assert "Failed to import the application module 'nosuchmodule'" in out
    assert "ModuleNotFoundError: No module named 'nosuchmodule'" in out
    assert "Reason: App failed to load." in out


def test_import_error_exits_4_with_traceback():
    code, out = run(["-b", "127.0.0.1:0", "broken_import:app"])
    assert code == 4
    assert "Failed to import the application module 'broken_import'" in out
    assert "Traceback (most recent call last):" in out
    assert "ValueError: broken on purpose at import time" in out
    assert 'line 5, in helper' in out


def test_missing_attribute_names_module_and_attribute():
    code, out = run(["-b", "127.0.0.1:0", "hello:nope"])
    assert code == 4
    assert "Failed to find attribute 'nope' in 'hello'" in out


@pytest.mark.parametrize("spec,needle", [
    ("hello:not_callable", "Application object must be callable"),
    ("hello:nothing", "Failed to find application object"),
    ("factory:failing_factory()", "RuntimeError: the factory refuses"),
    ("factory:create_app(os.getcwd())", "must be Python literals"),
    ("hello.py", "did you mean 'hello:application'?"),
    ("hello:1bad", "as an attribute name or function call"),
])
def test_app_load_failures(spec, needle):
    code, out = run(["-b", "127.0.0.1:0", spec])
    assert code == 4, out
    assert needle in out


def test_app_module_default_variable(server):
    s = server(app="hello")  # MODULE alone means MODULE:application
    assert get(s.port)[2] == b"Hello, World!\n"


def test_dotted_module(server):
    s = server(app="pkg.wsgi:application")
    assert get(s.port)[2] == b"dotted"


def test_factories(server):
    s = server(app="factory:create_app()")
    assert get(s.port)[2] == b"hello!"
    s = server(app="factory:create_app('hi', punctuation='?', times=2)")
    assert get(s.port)[2] == b"hi?hi?"


def test_chdir(server, tmp_path):
    s = server("--chdir", APPS, app="hello:app", cwd=str(tmp_path))
    assert get(s.port)[0] == 200


def test_pythonpath(server, tmp_path):
    s = server("--pythonpath", "/nonexistent," + APPS, app="pkg.wsgi",
               cwd=str(tmp_path))
    assert get(s.port)[2] == b"dotted"


def test_no_app_module():
    code, out = run([])
    assert code == 1
    assert "No application module specified" in out


def test_bad_command_line():
    code, out = run(["-w", "many", "hello:app"])
    assert code == 2
    assert "argument -w/--workers: invalid int value: 'many'" in out


def test_busy_port_retries_then_exits_1():
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        t0 = time.monotonic()
        code, out = run(["-b", "127.0.0.1:%d" % port, "hello:app"])
        elapsed = time.monotonic() - t0
    finally:
        blocker.close()
    assert code == 1
    assert out.count("Connection in use: ('127.0.0.1', %d)" % port) == 5
    assert "Can't connect to ('127.0.0.1', %d)" % port in out
    assert 3.5 < elapsed < 10


def test_unknown_worker_class():
    code, out = run(["-b", "127.0.0.1:0", "-k", "nosuch", "hello:app"])
    assert code == 1
    assert "worker class 'nosuch' not found" in out
    assert "--plugin-path" in out
    assert len([l for l in out.splitlines() if "nosuch" in l]) == 1


def test_gevent_names_the_replacement():
    code, out = run(["-b", "127.0.0.1:0", "-k", "gevent", "hello:app"])
    assert code == 1
    assert "use -k ev" in out


def test_gunicorn_class_name_maps_to_sync(server):
    s = server("-k", "gunicorn.workers.sync.SyncWorker")
    assert get(s.port)[0] == 200
    assert "Using worker: sync" in s.log()


def test_unix_socket(server, tmp_path):
    path = str(tmp_path / "nw.sock")
    s = server("-b", "unix:" + path, bind=False, wait=False)
    wait_for(lambda: os.path.exists(path) and "Listening at: unix:" + path
             in s.log(), what="the unix socket")
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(path)
        c.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = b""
        while True:
            data = c.recv(4096)
            if not data:
                break
            raw += data
    status, _, body = parse_response(raw)
    assert status == 200
    assert int(body) in s.workers()
    s.stop()
    assert not os.path.exists(path)


def test_several_binds(server):
    s = server("-b", "127.0.0.1:0")
    ports = [int(p) for p in re.findall(
        r"Listening at: http://127\.0\.0\.1:(\d+) ", s.log())]
    assert len(ports) == 2
    for port in ports:
        assert get(port)[0] == 200


def test_app_exception_gives_500_and_traceback(server):
    s = server(app="errors:app")
    status, headers, body = get(s.port, "/raise")
    assert status == 500
    assert headers["connection"] == "close"
    wait_for(lambda: "ZeroDivisionError" in s.log(), what="the traceback")
    assert "Error handling request /raise" in s.log()
    # the worker lives on
    assert get(s.port, "/ok")[0] == 200


def test_heartbeat_keeps_idle_workers_and_timeout_kills_busy_ones(server):
    # an idle worker beats between requests, so -t 2 never fires on it ...
    s = server("-t", "2", workers_ready=1)
    worker = s.workers()[0]
    time.sleep(3.5)
    assert s.workers() == [worker]
    assert "WORKER TIMEOUT" not in s.log()
    # ... while one stuck in the app longer than the timeout is killed and
    # replaced
    assert http(s.port, b"GET /sleep?6 HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    wait_for(lambda: "WORKER TIMEOUT (pid:%d)" % worker in s.log(),
             timeout=8, what="the timeout")
    wait_for(lambda: len(s.workers()) == 1 and worker not in s.workers(),
             timeout=5, what="a replacement")
    assert get(s.port)[0] == 200
