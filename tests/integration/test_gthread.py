"""The gthread worker class: a pool of `threads` threads runs the
requests while ev's loop holds the listeners and the waiting connections.
(Keep-alive, pipelining, timeouts, worker_connections and graceful stop
are in test_ev.py, and the corpus, responses, frameworks, large bodies and
lifecycle tests run against gthread too, parametrized by class.)"""
import signal
import socket
import threading
import time

import pytest

from helpers import alive, get, http, wait_for

SLEEP = b"GET /sleep?%s HTTP/1.1\r\nHost: x\r\n\r\n"


def timed_gets(port, paths):
    """GET each path at once, each on its own connection: (seconds until
    the last answer, the statuses)."""
    results = [None] * len(paths)

    def fetch(i, path):
        results[i] = get(port, path)[0]

    threads = [threading.Thread(target=fetch, args=(i, p))
               for i, p in enumerate(paths)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return time.monotonic() - t0, results


def test_sync_with_threads_is_gthread(server):
    """As Gunicorn: -k sync (the default) with --threads N > 1 runs the
    gthread class, and N requests run at once."""
    s = server("--threads", "4", workers_ready=1)
    assert "Using worker: gthread" in s.log()
    took, statuses = timed_gets(s.port, ["/sleep?1"] * 4)
    assert statuses == [200] * 4
    assert took < 1.9, took
    one = server("--threads", "1", workers_ready=1)
    assert "Using worker: sync" in one.log()


def test_threads_bound_the_requests_running_at_once(server):
    s = server("-k", "gthread", "--threads", "2", workers_ready=1)
    took, statuses = timed_gets(s.port, ["/sleep?1"] * 4)
    assert statuses == [200] * 4
    # two at a time: two rounds
    assert 1.9 < took < 3.5, took


def test_idle_keepalive_connections_hold_no_thread(server):
    """Connections kept alive between requests wait in the loop, not on a
    thread: with one thread, three idle clients do not keep a fourth
    waiting (a thread per connection would, for the keep-alive time)."""
    s = server("-k", "gthread", "--threads", "1", "--keep-alive", "30",
               workers_ready=1)
    idle = []
    for i in range(3):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        idle.append(c)
    t0 = time.monotonic()
    assert get(s.port, "/")[0] == 200
    assert time.monotonic() - t0 < 1.0
    # and the idle ones are still served
    for c in idle:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        c.close()


def test_slow_client_holds_no_thread(server):
    """A head or a body still arriving waits in the loop: with one thread,
    a client sending half a request does not delay another."""
    s = server("-k", "gthread", "--threads", "1", workers_ready=1)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as a, \
            socket.create_connection(("127.0.0.1", s.port),
                                     timeout=10) as b:
        a.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        b.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                  b"\r\nhalf")
        time.sleep(0.2)
        t0 = time.monotonic()
        assert get(s.port, "/")[0] == 200
        assert time.monotonic() - t0 < 1.0
        a.sendall(b"\r\n")
        assert a.recv(4096).startswith(b"HTTP/1.1 200")


def test_a_request_longer_than_timeout_keeps_the_worker(server):
    """As Gunicorn's gthread: the loop beats for the worker while a thread
    is in the app, so `timeout` bounds a stuck loop, not a long request."""
    s = server("-k", "gthread", "-t", "2", workers_ready=1)
    worker = s.workers()[0]
    raw = http(s.port, SLEEP % b"4", timeout=20)
    assert raw.startswith(b"HTTP/1.1 200")
    assert s.workers() == [worker]
    assert "WORKER TIMEOUT" not in s.log()


def test_quick_stop_leaves_a_request_in_the_app(server, tmp_path):
    """INT: the worker leaves at once; a thread still in the app is left
    with the process (Gunicorn's gthread does the same), and the master
    thread's Python (the worker_int hook here) is not interrupted by the
    app's SystemExit."""
    marks = tmp_path / "marks"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def worker_int(worker):\n"
        "    open(%r, 'a').write('int %%d\\n' %% worker.pid)\n"
        "def worker_exit(server, worker):\n"
        "    open(%r, 'a').write('exit %%d\\n' %% worker.pid)\n"
        % (str(marks), str(marks)))
    s = server("-k", "gthread", "-c", str(conf), workers_ready=1)
    worker = s.workers()[0]
    answer = []
    t = threading.Thread(target=lambda: answer.append(http(
        s.port, SLEEP % b"20", timeout=20)))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s.send(signal.SIGINT)
    assert s.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 5
    assert not alive(worker)
    t.join(timeout=5)
    assert answer == [b""]
    wait_for(lambda: marks.exists() and "exit" in marks.read_text(),
             what="worker_exit")
    assert marks.read_text() == "int %d\nexit %d\n" % (worker, worker)
    assert "leaving 1 request(s) still in the app" in s.log()
    assert "Traceback" not in s.log()
    assert "SystemExit" not in s.log()


@pytest.mark.parametrize("threads", ["0", "1"])
def test_one_thread_serves(server, threads):
    """--threads 0 or 1 with -k gthread: one thread (Gunicorn's gthread
    needs at least one too)."""
    s = server("-k", "gthread", "--threads", threads, workers_ready=1)
    assert get(s.port, "/")[0] == 200
