"""The tornado-compat worker class (-k tornado, Gunicorn's spelling): a
Tornado IOLoop serving a tornado.web.Application as it is and a WSGI app
through WSGIContainer, with the heartbeat, graceful and quick stops and
max_requests of every class."""
import signal
import socket
import threading
import time

import pytest

from helpers import exchange, get, parse_responses, wait_for

pytest.importorskip("tornado")


def test_tornado_app_served_with_keepalive(server):
    s = server("-k", "tornado", app="tornado_app:app", workers_ready=1)
    assert "Using worker: tornado-compat" in s.log()
    worker = s.workers()[0]
    raw = exchange(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 5\r\n\r\nhello")
    first, second = parse_responses(raw)
    assert first[0] == 200 and first[2] == b"tornado %d" % worker
    assert second[0] == 200 and second[2] == b"hello"


def test_wsgi_app_through_wsgicontainer(server):
    s = server("-k", "gunicorn.workers.gtornado.TornadoWorker",
               app="hello:app", workers_ready=1)
    status, _, body = get(s.port, "/")
    assert (status, body) == (200, b"Hello, World!\n")


def test_graceful_stop_finishes_requests_in_flight(server):
    s = server("-k", "tornado", "--graceful-timeout", "10",
               app="tornado_app:app", workers_ready=1)
    # an idle keep-alive connection does not hold the stop up
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    answer = []
    t = threading.Thread(target=lambda: answer.append(get(s.port,
                                                          "/slow?s=1.5")))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s.send(signal.SIGTERM)
    assert s.wait(timeout=15) == 0
    took = time.monotonic() - t0
    t.join(timeout=5)
    assert answer and answer[0][0] == 200 and answer[0][2] == b"slept"
    # the request's second left, not graceful_timeout
    assert took < 5, took
    idle.close()


def test_heartbeat_keeps_an_idle_worker(server):
    s = server("-k", "tornado", "-t", "2", app="tornado_app:app",
               workers_ready=1)
    worker = s.workers()[0]
    time.sleep(4)
    assert s.workers() == [worker]
    assert "WORKER TIMEOUT" not in s.log()
    assert get(s.port, "/")[0] == 200


def test_max_requests_counts_requests_not_connections(server):
    """Gunicorn's tornado worker counts connections; here 5 requests on
    one kept connection retire the worker."""
    s = server("-k", "tornado", "--max-requests", "5",
               app="tornado_app:app", workers_ready=1)
    first = s.workers()[0]
    raw = exchange(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
    assert [r[0] for r in parse_responses(raw)] == [200] * 5
    wait_for(lambda: "Autorestarting worker after 5 requests" in s.log(),
             what="the autorestart")
    wait_for(lambda: s.workers() and first not in s.workers(),
             timeout=15, what="the successor")
    assert get(s.port, "/")[0] == 200


def test_missing_tornado_is_one_clear_line(server, tmp_path):
    fake = tmp_path / "fake"
    (fake / "tornado").mkdir(parents=True)
    (fake / "tornado" / "__init__.py").write_text(
        "raise ImportError('no tornado here')\n")
    s = server("-k", "tornado", "--pythonpath", str(fake), app="hello:app",
               wait=False)
    assert s.wait(timeout=15) == 3
    assert ("the tornado-compat worker class needs Tornado (no tornado "
            "here): apt-get install python3-tornado" in s.log())


def test_flask_through_wsgicontainer(server, tmp_path):
    """A real WSGI framework through Tornado's WSGIContainer (whose
    environ is Tornado's: Content-Length bodies, no chunked uploads)."""
    pytest.importorskip("flask")
    data = tmp_path / "download.bin"
    data.write_bytes(bytes(range(256)) * 1024)
    s = server("-k", "tornado", app="flask_app:app",
               env={"NARWHAL_TEST_DATA_FILE": str(data)}, workers_ready=1)
    form = b"a=1&b=two%20words"
    raw = exchange(s.port, b"".join([
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
        b"x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
        % (len(form), form),
        b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /go HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
    ]))
    r = parse_responses(raw)
    assert [x[0] for x in r] == [200, 200, 200, 302, 404]
    assert r[0][2] == b"hello flask"
    assert r[1][2] == b"1+two words"
    assert r[2][2] == data.read_bytes()
    assert r[3][1]["location"].endswith("/user/redirected")
    assert r[4][2] == b"custom 404"
    assert "Traceback" not in s.log()
