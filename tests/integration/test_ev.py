"""The ev worker class, and gthread where it shares ev's loop: many
connections per worker, keep-alive, pipelining, the per-connection
timeouts, worker_connections, memory per idle connection, graceful stop
and the heartbeat of a busy app.  (The
HTTP/WSGI corpus, responses, frameworks, large bodies and lifecycle tests
run against ev too, parametrized by class.)"""
import json
import resource
import signal
import socket
import time

import pytest

from helpers import SANITIZED, exchange, get, parse_responses, wait_for

REQ = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n"
# the classes built on ev's loop: gthread holds connections there too,
# only the app calls go to its threads
LOOP_CLASSES = ["ev", "gthread"]


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """1000 client sockets here plus 1000 in the worker: the soft limit
    of this test process (inherited by the server it starts) is raised
    to the hard one, never system-wide."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2100:
        pytest.skip("needs 2100 open files (ulimit -Hn)")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def read_response(c, buf=b""):
    """One response with a Content-Length from socket c: (status,
    headers, body, what was read past it)."""
    while b"\r\n\r\n" not in buf:
        data = c.recv(65536)
        assert data, "closed before a response: %r" % buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in
                   (line.partition(":") for line in lines[1:]))
    n = int(headers["content-length"])
    while len(rest) < n:
        data = c.recv(65536)
        assert data, "closed in a body"
        rest += data
    return int(lines[0].split()[1]), headers, rest[:n], rest[n:]


def closed_by_peer(c, timeout):
    """True once the server closed c (EOF or reset) within timeout."""
    c.settimeout(timeout)
    try:
        while True:
            if not c.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_1000_concurrent_keepalive_connections(server, klass):
    s = server("-k", klass, "--keep-alive", "60", app="echo", workers_ready=1)
    conns = [socket.create_connection(("127.0.0.1", s.port), timeout=30)
             for _ in range(1000)]
    try:
        for rnd in range(2):
            # every connection has a request in before any is read
            for i, c in enumerate(conns):
                c.sendall(REQ % i)
            for i, c in enumerate(conns):
                status, headers, body, rest = read_response(c)
                assert status == 200 and rest == b""
                assert headers["connection"] == "keep-alive"
                assert json.loads(body)["PATH_INFO"] == "/%d" % i
    finally:
        for c in conns:
            c.close()
    assert len(s.workers()) == 1


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_100_pipelined_requests_in_one_write(server, klass):
    s = server("-k", klass, app="echo")
    raw = b"".join(REQ % i for i in range(99))
    raw += b"GET /99 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = parse_responses(exchange(s.port, raw, half_close=False))
    assert len(responses) == 100
    paths = [json.loads(body)["PATH_INFO"] for _, _, body in responses]
    assert paths == ["/%d" % i for i in range(100)]
    assert responses[-1][1]["connection"] == "close"


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_slowloris_neither_delays_others_nor_survives(server, klass):
    s = server("-k", klass, "--header-timeout", "2", app="echo",
               workers_ready=1)
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    sent, served = 0, 0
    closed = False
    # one header byte every 0.2 s: each byte is progress, none moves
    # the deadline of the head
    while time.monotonic() - t0 < 10:
        try:
            slow.sendall(b"X-Slow: " if sent == 0 else b"a")
            sent += 1
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if time.monotonic() - t0 < 1.5:
            # meanwhile a normal client is served as if alone
            with socket.create_connection(("127.0.0.1", s.port),
                                          timeout=10) as c:
                c.sendall(b"GET /normal HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(c)[0] == 200
                served += 1
        if closed_by_peer(slow, 0.2):
            closed = True
            break
    assert closed, "the slow client was never disconnected"
    assert served >= 3
    # closed by its header timeout (2 s), long before it could finish
    assert time.monotonic() - t0 < 8
    assert sent < 40
    slow.close()


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_stalled_body_is_closed(server, klass):
    s = server("-k", klass, "--body-timeout", "1", app="echo",
               workers_ready=1)
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                  b"\r\nabc")
        assert closed_by_peer(c, 8)
    # a body that keeps coming, slower than the whole limit but never
    # stalling that long, is served
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"\r\n")
        for b in b"abcd":
            time.sleep(0.4)
            c.sendall(bytes([b]))
        status, _, body, _ = read_response(c)
        assert status == 200 and json.loads(body)["body"] == "abcd"


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_worker_connections_pauses_without_refusing(server, klass):
    s = server("-k", klass, "--worker-connections", "2", app="echo",
               workers_ready=1)
    # two requests in progress fill the worker
    busy = [socket.create_connection(("127.0.0.1", s.port), timeout=10)
            for _ in range(2)]
    for c in busy:
        c.sendall(b"GET /busy HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    third = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    third.sendall(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
    # it waits in the backlog: neither answered nor refused
    third.settimeout(1.0)
    with pytest.raises(socket.timeout):
        third.recv(100)
    # one finishes and closes: the third is taken and served
    busy[0].sendall(b"Connection: close\r\n\r\n")
    assert read_response(busy[0])[0] == 200
    third.settimeout(10)
    status, _, body, _ = read_response(third)
    assert status == 200 and json.loads(body)["PATH_INFO"] == "/third"
    for c in busy + [third]:
        c.close()


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_idle_connection_makes_room(server, klass):
    s = server("-k", klass, "--worker-connections", "2", "--keep-alive",
               "60", app="echo", workers_ready=1)
    idle = []
    for i in range(2):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(REQ % i)
        assert read_response(c)[0] == 200
        idle.append(c)
        time.sleep(0.1)
    # at the limit, but both are only idle: the oldest makes room
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(REQ % 2)
        assert read_response(c)[0] == 200
    assert closed_by_peer(idle[0], 5)
    idle[1].sendall(REQ % 3)
    assert read_response(idle[1])[0] == 200
    for c in idle:
        c.close()


@pytest.mark.skipif(SANITIZED, reason="RSS under ASan's allocator")
@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_idle_keepalive_connections_cost_little_memory(server, klass):
    s = server("-k", klass, "--keep-alive", "120", "--worker-connections",
               "1100", app="echo", workers_ready=1)
    worker = s.workers()[0]
    # the steady state: the app, its imports and the buffers warmed up
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        for i in range(20):
            c.sendall(REQ % i)
            read_response(c)
        c.close()
    time.sleep(0.2)
    before = rss_kib(worker)
    conns = []
    try:
        for i in range(1000):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            c.sendall(REQ % i)
            assert read_response(c)[0] == 200
            conns.append(c)
        time.sleep(0.2)
        growth = rss_kib(worker) - before
        # still open: each one answers again
        for c in conns[::100]:
            c.sendall(REQ % 0)
            assert read_response(c)[0] == 200
    finally:
        for c in conns:
            c.close()
    print("1000 idle connections: +%d KiB" % growth)
    assert growth < 8 * 1024, "1000 idle connections took %d KiB" % growth


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_graceful_stop(server, klass):
    s = server("-k", klass, "--keep-alive", "60", "--graceful-timeout", "3",
               "--header-timeout", "30", app="echo", workers_ready=1)
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    idle.sendall(REQ % 1)
    assert read_response(idle)[0] == 200
    started = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    started.sendall(b"GET /in-flight HTTP/1.1\r\nHost: x\r\n")
    stuck = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    stuck.sendall(b"GET /never-ends HTTP/1.1\r\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    s.send(signal.SIGTERM)
    # the idle connection is closed at once
    assert closed_by_peer(idle, 2)
    # the request in flight is finished, and says the connection closes
    started.sendall(b"\r\n")
    status, headers, body, _ = read_response(started)
    assert status == 200 and headers["connection"] == "close"
    # one that never completes is cut at graceful_timeout
    assert closed_by_peer(stuck, 10)
    assert s.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 6
    for c in (idle, started, stuck):
        c.close()


def test_busy_app_longer_than_timeout_kills_the_worker(server):
    s = server("-k", "ev", "-t", "2", workers_ready=1)
    worker = s.workers()[0]
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as c:
        c.sendall(b"GET /sleep?8 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: "WORKER TIMEOUT (pid:%d)" % worker in s.log(),
                 timeout=15, what="the timeout")
    wait_for(lambda: s.workers() and worker not in s.workers(),
             timeout=15, what="a new worker")


@pytest.mark.parametrize("klass", LOOP_CLASSES)
def test_heartbeat_while_idle_and_many_connections(server, klass):
    # an idle ev worker with open connections beats: a short timeout
    # does not kill it
    s = server("-k", klass, "-t", "2", "--keep-alive", "60", app="echo",
               workers_ready=1)
    worker = s.workers()[0]
    conns = []
    for i in range(20):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(REQ % i)
        read_response(c)
        conns.append(c)
    time.sleep(4)
    assert s.workers() == [worker]
    assert "WORKER TIMEOUT" not in s.log()
    for c in conns:
        c.close()



def test_idle_workers_take_clients_in_turn(server):
    """Four ev workers share one listener; 200 clients arrive one after
    another.  Left to the kernel (or waiting behind libev's own epoll
    set, where EPOLLEXCLUSIVE is not exclusive), one worker takes nearly
    all of them; an idle worker waits on the accept set itself and rejoins
    its queue at the back after each client, so they take turns."""
    s = server("-k", "ev", "-w", "4", app="hello", workers_ready=4)
    workers = set(s.workers())
    seen = set()

    def every_worker_served():
        seen.add(int(get(s.port, "/pid")[2]))
        return seen == workers
    # booted workers reach their loop one by one: once all have served
    wait_for(every_worker_served, timeout=10, what="all 4 workers serving")
    served = {}
    for _ in range(200):
        status, _, body = get(s.port, "/pid")
        assert status == 200
        pid = int(body)
        served[pid] = served.get(pid, 0) + 1
    assert set(served) == workers, served
    # strictly in turn gives 50 each; without the direct wait, seen:
    # 93/96/7/4 and 62/61/39/38
    assert all(40 <= n <= 60 for n in served.values()), served


def test_a_slow_apps_response_is_not_held_for_the_others(server):
    """Responses made in one turn of the loop go out together at its end,
    but never behind another slow app call: two slow requests that become
    ready together are answered one call apart, not both at the end."""
    s = server("-k", "ev", app="hello", workers_ready=1)
    busy = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    a = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    b = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    # while the worker is in busy's app call, a and b send theirs: its
    # next wait returns both at once
    busy.sendall(b"GET /sleep?0.4 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    a.sendall(b"GET /sleep?0.6 HTTP/1.1\r\nHost: x\r\n\r\n")
    b.sendall(b"GET /sleep?0.6 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(busy)[0] == 200
    t0 = time.monotonic()
    first = None
    for c in (a, b):
        c.setblocking(False)
    while first is None and time.monotonic() - t0 < 5:
        for c in (a, b):
            try:
                if c.recv(1, socket.MSG_PEEK):
                    first = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
        time.sleep(0.01)
    # about 0.6 s (one call); both at the end of the turn would be 1.2 s
    assert first is not None and first < 1.0, first
    for c in (busy, a, b):
        c.close()
