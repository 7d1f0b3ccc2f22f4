"""Server hooks: every Gunicorn hook from a Python config file, at its call
point and in its process, with the objects of the built-in `narwhal`
module; a hook that raises is logged and service goes on; C hook plugins
(a counting plugin built with the tests, sdnotify, statsd)."""
import json
import os
import signal
import socket
import struct
import time

import pytest

from helpers import APPS, BUILDDIR, TEST_PLUGINS, wait_for
from helpers import get as _get

CONF = os.path.join(APPS, "hooks_conf.py")

# the request-path tests run with every worker class built here
KLASSES = ["sync"] + (["ev"] if os.path.exists(
    os.path.join(BUILDDIR, "plugins", "ev", ".libs", "ev.so")) else [])


@pytest.fixture(params=KLASSES)
def klass(request):
    return request.param


def get(port, path="/", headers=b""):
    """One request on its own connection, whatever the class keeps."""
    return _get(port, path, headers=headers + b"Connection: close\r\n")


def stop_pid(pid):
    """A master started by USR2 is not the fixture's to stop: TERM it
    (by pid) if a failed assertion left it running."""
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def events(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def names(path):
    return [e["hook"] for e in events(path)]


def wait_hook(path, name, count=1, timeout=10):
    return wait_for(lambda: names(path).count(name) >= count,
                    timeout=timeout, what="%d %s hook(s): %s"
                    % (count, name, names(path)))


def test_every_hook_in_order_and_in_its_process(server, tmp_path):
    out = tmp_path / "hooks.jsonl"
    s = server("-c", CONF, env={"HOOKS_OUT": str(out)}, workers_ready=1)
    master = s.pid
    wait_hook(out, "post_worker_init")
    first = s.workers()[0]

    # start: nworkers_changed (old None) when the arbiter is made, then
    # on_starting before the sockets, when_ready after, then the worker
    start = names(out)
    assert start == ["nworkers_changed", "on_starting", "when_ready",
                     "pre_fork", "post_fork", "post_worker_init"], start
    ev = events(out)
    assert ev[0]["new"] == 1 and ev[0]["old"] is None
    assert ev[1]["server"]["listeners"] == []
    assert ev[2]["server"]["listeners"] == [
        "http://127.0.0.1:%d" % s.port]
    for e in ev[:4]:
        assert e["in_pid"] == master
    assert ev[1]["server"]["pid"] == master
    assert ev[1]["server"]["app"] == "hello:app"
    assert ev[1]["server"]["cfg_workers"] == 1
    assert ev[3]["worker"]["pid"] == "[booting]"
    assert ev[3]["worker"]["age"] == 1
    assert ev[4]["in_pid"] == first and ev[5]["in_pid"] == first
    assert ev[4]["worker"]["pid"] == first
    assert ev[4]["worker"]["ppid"] == master
    assert ev[4]["server_pid"] == master
    # as Gunicorn: booted only once post_worker_init has run
    assert ev[4]["worker"]["booted"] is False
    assert ev[5]["worker"]["booted"] is False
    # the Worker object is the same from post_fork to post_worker_init
    assert ev[5]["mark"] == "set in post_fork"

    # a request: pre_request (worker, req), post_request with 4 args
    status, _, body = get(s.port, "/path/x?a=1&b=2",
                          headers=b"X-Hook: yes\r\n")
    assert status == 200
    wait_hook(out, "post_request")
    pre = [e for e in events(out) if e["hook"] == "pre_request"][0]
    post = [e for e in events(out) if e["hook"] == "post_request"][0]
    assert pre["in_pid"] == first and post["in_pid"] == first
    # Gunicorn counts the request (nr) before the app: post_request sees it
    assert pre["worker"]["nr"] == 0 and post["worker"]["nr"] == 1
    assert pre["worker"]["booted"] is True
    assert pre["method"] == "GET"
    assert pre["uri"] == "/path/x?a=1&b=2"
    assert pre["path"] == "/path/x"
    assert pre["query"] == "a=1&b=2"
    assert pre["version"] == [1, 1]
    assert ["X-HOOK", "yes"] in pre["headers"]
    assert pre["remote_addr"] == "127.0.0.1"
    assert pre["worker"]["nr"] == 0
    assert post["status"] == "200 OK" and post["status_code"] == 200
    assert post["sent"] == len(body)
    assert post["environ_path"] == "/path/x"
    assert ["Content-Type", "text/plain"] in [
        list(h) for h in post["headers"]]
    # worker.log writes in narwhal's format
    assert "[INFO] pre_request GET /path/x" in s.log()

    # TTIN: nworkers_changed(2, 1), a second worker
    s.send(signal.SIGTTIN)
    wait_hook(out, "post_worker_init", 2)
    ch = [e for e in events(out) if e["hook"] == "nworkers_changed"]
    assert (ch[-1]["new"], ch[-1]["old"]) == (2, 1)
    wait_for(lambda: len(s.workers()) == 2, what="2 workers")

    # HUP, as Gunicorn's setup(): the configuration's number of workers
    # again (nworkers_changed(1, 2)), then on_reload in the master, before
    # the new workers' pre_fork
    before = len(events(out))
    s.send(signal.SIGHUP)
    wait_hook(out, "on_reload")
    wait_for(lambda: "Reload complete" in s.log(), what="reload")
    after = names(out)[before:]
    assert after.index("nworkers_changed") < after.index("on_reload")
    assert after.index("on_reload") < after.index("pre_fork")
    ch = [e for e in events(out)[before:]
          if e["hook"] == "nworkers_changed"]
    assert (ch[0]["new"], ch[0]["old"]) == (1, 2)
    rel = [e for e in events(out) if e["hook"] == "on_reload"][0]
    assert rel["in_pid"] == master
    assert rel["server"]["listeners"] == ["http://127.0.0.1:%d" % s.port]
    # the old workers leave: worker_exit in them, child_exit in the master
    wait_for(lambda: names(out).count("child_exit") >= 2,
             what="child_exit of the old workers")

    # a worker's death: child_exit with its pid, in the master
    wait_for(lambda: len(s.workers()) == 1, what="1 worker")
    victim = s.workers()[0]
    n_child = names(out).count("child_exit")
    os.kill(victim, signal.SIGKILL)
    wait_hook(out, "child_exit", n_child + 1)
    ce = [e for e in events(out) if e["hook"] == "child_exit"][-1]
    assert ce["worker"]["pid"] == victim and ce["in_pid"] == master

    # shutdown: worker_exit in each worker, then on_exit in the master,
    # last
    wait_for(lambda: len(s.workers()) == 1, what="1 worker again")
    s.stop()
    final = events(out)
    assert final[-1]["hook"] == "on_exit"
    assert final[-1]["in_pid"] == master
    exits = [e for e in final if e["hook"] == "worker_exit"]
    assert all(e["in_pid"] == e["worker"]["pid"] for e in exits)
    assert all(e["hook"] != "worker_int" for e in final)


def test_worker_int_on_quick_stop(server, tmp_path):
    out = tmp_path / "hooks.jsonl"
    s = server("-c", CONF, env={"HOOKS_OUT": str(out)}, workers_ready=1)
    wait_hook(out, "post_worker_init")
    w = s.workers()[0]
    s.stop(signal.SIGINT)
    ev = [e for e in events(out) if e["hook"] == "worker_int"]
    assert len(ev) == 1 and ev[0]["in_pid"] == w


@pytest.mark.parametrize("path", ["/sleep?5", "/spin?5"])
def test_worker_abort_on_timeout(server, tmp_path, path):
    """A worker timed out in a blocking call (sleep) or spinning in Python
    with the GIL held runs worker_abort then worker_exit, outside the
    signal handler, and logs its exit."""
    out = tmp_path / "hooks.jsonl"
    s = server("-c", CONF, "-t", "1", app="hello:app",
               env={"HOOKS_OUT": str(out)}, workers_ready=1)
    wait_hook(out, "post_worker_init")
    w = s.workers()[0]
    try:
        get(s.port, path)
    except (OSError, IndexError):  # the worker is killed mid-request
        pass
    wait_hook(out, "worker_exit", timeout=15)
    mine = [e["hook"] for e in events(out) if e.get("in_pid") == w]
    assert mine[-2:] == ["worker_abort", "worker_exit"], mine
    assert "WORKER TIMEOUT (pid:%d)" % w in s.log()
    wait_for(lambda: "Worker exiting (pid: %d)" % w in s.log(),
             what="the exit line")


def test_pre_exec_on_usr2(server, tmp_path):
    out = tmp_path / "hooks.jsonl"
    s = server("-c", CONF, env={"HOOKS_OUT": str(out)}, workers_ready=1)
    wait_hook(out, "post_worker_init")
    s.send(signal.SIGUSR2)
    wait_hook(out, "pre_exec")
    e = [e for e in events(out) if e["hook"] == "pre_exec"][0]
    # in the forked child that becomes the new master
    assert e["in_pid"] != s.pid
    # the new master runs on_starting itself
    wait_hook(out, "on_starting", 2)
    new_master = [x for x in events(out) if x["hook"] == "on_starting"][1]
    try:
        wait_hook(out, "post_worker_init", 2)
        os.kill(new_master["in_pid"], signal.SIGTERM)
        wait_for(lambda: names(out).count("on_exit") >= 1, what="on_exit")
    finally:
        stop_pid(new_master["in_pid"])


def test_num_workers_set_by_a_hook(server, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text(
        "workers = 1\n"
        "def when_ready(server):\n"
        "    server.num_workers = 3\n")
    s = server("-c", str(conf))
    wait_for(lambda: len(s.workers()) == 3, what="3 workers")


RAISING = """
import narwhal
def on_starting(server):
    raise RuntimeError("boom in on_starting")
def post_fork(server, worker):
    raise ValueError("boom in post_fork")
def pre_request(worker, req):
    if req.path == "/fail-pre":
        raise KeyError("boom in pre_request")
def post_request(worker, req):
    raise RuntimeError("boom in post_request")
def nworkers_changed(server, new, old):
    raise RuntimeError("boom in nworkers_changed")
"""


def test_a_raising_hook_is_logged_and_service_goes_on(server, tmp_path, klass):
    conf = tmp_path / "conf.py"
    conf.write_text(RAISING)
    s = server("-k", klass, "-c", str(conf), workers_ready=1)
    for _ in range(3):
        status, _, body = get(s.port, "/")
        assert status == 200 and body == b"Hello, World!\n"
    # an exception in pre_request: a 500, as Gunicorn's handle_error
    status, _, _ = get(s.port, "/fail-pre")
    assert status == 500
    status, _, _ = get(s.port, "/")
    assert status == 200
    log = s.log()
    for hook, exc in [("on_starting", "RuntimeError: boom in on_starting"),
                      ("post_fork", "ValueError: boom in post_fork"),
                      ("pre_request", "KeyError: 'boom in pre_request'"),
                      ("post_request",
                       "RuntimeError: boom in post_request"),
                      ("nworkers_changed",
                       "RuntimeError: boom in nworkers_changed")]:
        assert "[ERROR] Exception in %s hook" % hook in log, hook
        assert exc in log, exc
    assert "Traceback (most recent call last)" in log
    assert len(s.workers()) == 1
    assert s.stop() == 0


def test_log_object_levels_and_exception(server, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text(
        "loglevel = 'debug'\n"
        "def when_ready(server):\n"
        "    server.log.debug('dbg %d', 1)\n"
        "    server.log.info('inf %s', 'x')\n"
        "    server.log.warning('wrn')\n"
        "    server.log.error('err')\n"
        "    server.log.critical('crit')\n"
        "    try:\n"
        "        1 / 0\n"
        "    except ZeroDivisionError:\n"
        "        server.log.exception('caught')\n")
    s = server("-c", str(conf), workers_ready=1)
    wait_for(lambda: "caught" in s.log(), what="the log lines")
    log = s.log()
    for level, text in [("DEBUG", "dbg 1"), ("INFO", "inf x"),
                        ("WARNING", "wrn"), ("ERROR", "err"),
                        ("CRITICAL", "crit"), ("ERROR", "caught")]:
        assert "] [%d] [%s] %s" % (s.pid, level, text) in log, text
    assert "ZeroDivisionError: division by zero" in log


# ---------------------------------------------------------------------------
# C hook plugins


def calls(path):
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def test_c_hook_plugin_counts_its_calls(server, tmp_path, klass):
    out = tmp_path / "count.txt"
    plugin = os.path.join(TEST_PLUGINS, "count_hook.so")
    s = server("-k", klass, "--hook-plugin", plugin, "-w", "2",
               env={"COUNT_HOOK_OUT": str(out)}, workers_ready=2)
    wait_for(lambda: sum(c[0] == "post_worker_init" for c in calls(out))
             == 2, what="post_worker_init x2")
    for i in range(5):
        assert get(s.port, "/n%d" % i)[0] == 200
    wait_for(lambda: sum(c[0] == "post_request" for c in calls(out)) == 5,
             what="5 post_request calls")
    s.stop()
    c = calls(out)
    points = [x[0] for x in c]
    master = str(s.pid)
    # ordered registrations at when_ready: FIRST, the MIDDLE counter, LAST
    ready = [x[0] for x in c if x[0] in ("order_first", "when_ready",
                                          "order_last")]
    assert ready == ["order_first", "when_ready", "order_last"]
    for name in ("on_starting", "when_ready", "on_exit", "stopping"):
        assert points.count(name) == 1, name
        assert [x for x in c if x[0] == name][0][1] == master
    assert points.count("pre_fork") == 2
    assert points.count("post_fork") == 2
    assert points.count("child_exit") == 2
    assert points.count("worker_exit") == 2
    assert points.count("pre_request") == 5
    assert points.count("access") == 5
    # the worker's points run in the workers
    assert all(x[1] != master for x in c
               if x[0] in ("post_fork", "post_worker_init", "pre_request",
                           "post_request", "access", "worker_exit"))
    posts = [x for x in c if x[0] == "post_request"]
    assert sorted(x[4] for x in posts) == ["/n%d" % i for i in range(5)]
    assert all(x[2] == "200" and x[3] == "14" for x in posts)
    nw = [x for x in c if x[0] == "nworkers_changed"][0]
    assert nw[2:] == ["2", "-1"]


def test_c_hook_plugin_failure_is_logged(server, tmp_path, klass):
    out = tmp_path / "count.txt"
    plugin = os.path.join(TEST_PLUGINS, "count_hook.so")
    s = server("-k", klass, "--hook-plugin", plugin,
               env={"COUNT_HOOK_OUT": str(out), "COUNT_HOOK_FAIL": "1"},
               workers_ready=1)
    assert get(s.port, "/")[0] == 200
    assert get(s.port, "/")[0] == 200
    wait_for(lambda: "Hook plugin count: its post_request callback failed"
             in s.log(), what="the failure logged")
    # the other callbacks of the point still ran
    wait_for(lambda: sum(c[0] == "post_request" for c in calls(out)) == 2,
             what="2 post_request calls")


@pytest.mark.parametrize("name,message", [
    ("hook_bad_magic", "magic is 0x12345678"),
    ("hook_bad_major", "abi_major is 2"),
    ("hook_refuses", "refused to load"),
])
def test_broken_hook_plugins_are_refused(tmp_path, name, message):
    from helpers import run
    code, output = run(["--hook-plugin",
                        os.path.join(TEST_PLUGINS, name + ".so"),
                        "-b", "127.0.0.1:0", "hello:app"])
    assert code == 1, output
    assert message in output, output


def test_unknown_hook_plugin_is_refused(tmp_path):
    from helpers import run
    code, output = run(["--hook-plugin", "nosuchplugin", "-b",
                        "127.0.0.1:0", "hello:app"])
    assert code == 1
    assert "hook plugin 'nosuchplugin' not found" in output


# ---------------------------------------------------------------------------
# The shipped plugins


def recv_all(sock, until, timeout=10):
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode())
        except socket.timeout:
            pass
        if until(got):
            return got
    raise AssertionError("timed out; got %r" % got)


def recv_for(sock, seconds):
    """(sender pid, datagram) for each that arrives within seconds; the
    socket must have SO_PASSCRED set."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(12))
        except socket.timeout:
            continue
        pid = None
        for level, kind, cred in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cred[:12])[0]
        got.append((pid, data.decode()))
    return got


def test_statsd_udp(server, tmp_path, klass):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = sock.getsockname()[1]
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def post_request(worker, req):\n"
        "    worker.log.info('custom', extra={'metric': 'my.gauge',\n"
        "                    'value': 42, 'mtype': 'gauge'})\n"
        "    # Gunicorn sends nothing without an mtype it knows\n"
        "    worker.log.info('x', extra={'metric': 'no.type', 'value': 1})\n"
        "    worker.log.info('x', extra={'metric': 'odd.type', 'value': 1,\n"
        "                    'mtype': 'set'})\n")
    try:
        s = server("-k", klass, "-c", str(conf),
                   "--statsd-host", "127.0.0.1:%d" % port,
                   "--statsd-prefix", "app..", "--dogstatsd-tags",
                   "env:test,team:x", "-w", "2", workers_ready=2)
        for _ in range(3):
            get(s.port, "/")
        got = recv_all(sock, lambda g: sum(
            m.startswith("app.gunicorn.request.status.200:") for m in g) >= 3
            and sum(m.startswith("app.gunicorn.requests:") for m in g) >= 3
            and sum(m.startswith("app.my.gauge") for m in g) >= 3
            and any(m.startswith("app.gunicorn.workers:2|g") for m in g))
        tags = "|#env:test,team:x"
        assert got.count("app.gunicorn.requests:1|c|@1.0" + tags) == 3
        assert got.count("app.gunicorn.request.status.200:1|c|@1.0" + tags) == 3
        durations = [m for m in got
                     if m.startswith("app.gunicorn.request.duration:")]
        assert len(durations) == 3
        for m in durations:
            value = m.split(":", 1)[1].split("|")[0]
            assert float(value) >= 0 and m.endswith("|ms" + tags)
        assert "app.my.gauge:42|g" + tags in got
        assert not [m for m in got if ".type:" in m], got
        assert "app.gunicorn.workers:2|g" + tags in got
        s.send(signal.SIGTTOU)
        got = recv_all(sock, lambda g: "app.gunicorn.workers:1|g" + tags
                       in g)
    finally:
        sock.close()


def test_statsd_backlog_metric(server):
    """enable_backlog_metric (Gunicorn 24.1): clients waiting in the accept
    queue while the one sync worker is busy are sent as gunicorn.backlog,
    and nothing is sent without the setting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    port = sock.getsockname()[1]
    waiting = []
    try:
        s = server("--statsd-host", "127.0.0.1:%d" % port,
                   "--enable-backlog-metric", workers_ready=1)
        for path in ["/sleep?3"] + ["/"] * 3:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                      % path.encode())
            waiting.append(c)
            time.sleep(0.1)
        got = recv_all(sock, lambda g: "gunicorn.backlog:3|ms" in g)
        assert all(m.endswith("|ms") for m in got
                   if m.startswith("gunicorn.backlog:"))
        for c in waiting:
            c.close()
        s.stop()
        recv_for_udp(sock, 0.3)  # what it sent before it stopped
        quiet = server("--statsd-host", "127.0.0.1:%d" % port,
                       workers_ready=1)
        get(quiet.port, "/")
        assert not [m for m in recv_for_udp(sock, 2.5)
                    if m.startswith("gunicorn.backlog")]
    finally:
        sock.close()


def recv_for_udp(sock, seconds):
    """The datagrams that arrive on sock within seconds."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode())
        except socket.timeout:
            continue
    return got


def test_statsd_error_log_counter_and_unix_socket(server, tmp_path, klass):
    path = str(tmp_path / "statsd.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        s = server("-k", klass, "--statsd-host", "unix:" + path,
                   app="errors:app",
                   workers_ready=1)
        get(s.port, "/raise")  # "Error handling request" at ERROR
        got = recv_all(sock, lambda g: "gunicorn.log.error:1|c|@1.0" in g
                       and "gunicorn.request.status.500:1|c|@1.0" in g)
        assert "gunicorn.requests:1|c|@1.0" in got
    finally:
        sock.close()


def test_statsd_unix_socket_made_after_start(server, tmp_path):
    """The daemon's unix socket appears after narwhal started: the
    metrics flow once it exists."""
    path = str(tmp_path / "later.sock")
    s = server("--statsd-host", "unix:" + path, workers_ready=1)
    assert "cannot connect to %s" % path in s.log()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        def served_and_counted():
            get(s.port, "/")
            try:
                return sock.recv(65536)
            except socket.timeout:
                return None
        wait_for(served_and_counted, timeout=10, what="a metric")
    finally:
        sock.close()


def test_sdnotify(server, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    new_master = None
    try:
        s = server("-w", "2", env={"NOTIFY_SOCKET": path}, workers_ready=2)
        got = recv_all(sock, lambda g: any("READY=1" in m for m in g)
                       and any("2 workers" in m for m in g))
        ready = [m for m in got if "READY=1" in m][0]
        assert "MAINPID" not in ready
        assert "STATUS=narwhal master" in "".join(got)
        s.send(signal.SIGHUP)
        got = recv_all(sock, lambda g: any("READY=1" in m for m in g))
        assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=")
                   for m in got), got
        # USR2: the new master names itself with MAINPID
        s.send(signal.SIGUSR2)
        got = recv_all(sock, lambda g: any("MAINPID=" in m for m in g))
        m = [m for m in got if "MAINPID=" in m][0]
        new_master = int(m.split("MAINPID=")[1].split("\n")[0])
        assert new_master != s.pid and "READY=1" in m
        # the operator stops the old master: the service is not stopping,
        # and the old master says nothing more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        s.send(signal.SIGTERM)
        s.proc.wait(timeout=15)
        got = recv_for(sock, 1.0)
        assert not any(pid == s.pid for pid, _ in got), got
        assert not any("STOPPING=1" in m for _, m in got), got
        os.kill(new_master, signal.SIGTERM)
        got = recv_all(sock, lambda g: "STOPPING=1" in g)
        assert "STOPPING=1" in got, got
    finally:
        sock.close()
        stop_pid(new_master)


def test_post_request_with_three_arguments(server, tmp_path, klass):
    out = tmp_path / "out.txt"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def post_request(worker, req, environ):\n"
        "    with open(OUT, 'a') as f:\n"
        "        f.write(' '.join([req.method, req.path,\n"
        "                          environ['QUERY_STRING']]) + '\\n')\n"
        .replace("OUT", repr(str(out))))
    s = server("-k", klass, "-c", str(conf), workers_ready=1)
    get(s.port, "/three?q=3")
    wait_for(lambda: out.exists() and out.read_text() == "GET /three q=3\n",
             what="post_request(worker, req, environ)")


def test_config_kept_across_reloads_is_refused_not_read(server, tmp_path):
    """server.cfg kept by a hook outlives the settings a reload frees:
    reading it then raises ReferenceError (logged), never reads freed
    memory; a fresh server.cfg reads the new settings."""
    out = tmp_path / "seen"
    conf = tmp_path / "keep_cfg.py"
    conf.write_text(
        "import sys\n"
        "# the file runs again on each reload: keep the list in a module\n"
        "KEPT = sys.modules['os'].__dict__.setdefault('_kept_cfg', [])\n"
        "def on_starting(server):\n"
        "    KEPT.append(server.cfg)\n"
        "def on_reload(server):\n"
        "    with open(%r, 'a') as f:\n"
        "        f.write('fresh %%d\\n' %% server.cfg.workers)\n"
        "        f.write('kept %%d\\n' %% KEPT[0].workers)\n" % str(out))
    s = server("-c", str(conf), workers_ready=1)
    for n in (1, 2):
        s.send(signal.SIGHUP)
        wait_for(lambda: out.exists() and out.read_text().count("fresh")
                 >= n, what="on_reload %d" % n)
    # the first reload still had the start's settings alive (they are
    # freed once the new generation takes over); the second did not
    wait_for(lambda: "ReferenceError: these settings were replaced by a "
             "reload" in s.log(), what="the ReferenceError")
    assert s.proc.poll() is None
    assert get(s.port)[0] == 200


def test_worker_exit_after_a_failed_boot(server, tmp_path):
    """As Gunicorn's spawn_worker (its finally): a worker whose app fails
    to import logs its exit and runs worker_exit."""
    out = tmp_path / "hooks.jsonl"
    s = server("-c", CONF, app="broken_import:app", wait=False,
               env={"HOOKS_OUT": str(out)})
    assert s.wait(timeout=15) == 4
    exits = [e for e in events(out) if e["hook"] == "worker_exit"]
    assert exits and exits[0]["in_pid"] == exits[0]["worker"]["pid"]
    assert "Worker exiting (pid: %d)" % exits[0]["in_pid"] in s.log()
