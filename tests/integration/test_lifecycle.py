"""The arbiter as operators drive it: signals under load, reloads gated on
the new workers' readiness, recycling without a gap, USR2 upgrades,
sockets, pid files, daemon mode, privileges, process titles."""
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from helpers import (APPS, BINARY, Load, alive, children_of, get, http,
                     parse_response, run, wait_for)


def log_has(s, text, timeout=10):
    wait_for(lambda: text in s.log(), timeout=timeout, what=repr(text))


def workers_settle(s, n, timeout=15, exclude=()):
    """Wait until exactly n workers run and none of `exclude` is left."""
    return wait_for(lambda: (lambda w: w if len(w) == n
                             and not set(w) & set(exclude) else None)(
                                 s.workers()),
                    timeout=timeout, what="%d workers" % n)


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_hup_under_load_loses_nothing(server, klass):
    s = server("-k", klass, "-w", "2", workers_ready=2)
    old = s.workers()
    load = Load(s.port, threads=4)
    load.wait_for_requests(100)
    s.send(signal.SIGHUP)
    log_has(s, "Reload complete")
    new = workers_settle(s, 2, exclude=old)
    load.wait_for_requests(load.total() + 100)
    load.stop()
    assert load.failures == []
    assert "Hang up: Master" in s.log()
    assert not set(new) & set(old)


def test_ttin_ttou_under_load(server):
    s = server("-w", "2", workers_ready=2)
    first = s.workers()
    load = Load(s.port, threads=4)
    load.wait_for_requests(50)
    s.send(signal.SIGTTIN)
    three = workers_settle(s, 3)
    load.wait_for_requests(load.total() + 50)
    s.send(signal.SIGTTOU)
    two = workers_settle(s, 2)
    load.wait_for_requests(load.total() + 50)
    load.stop()
    assert load.failures == []
    assert set(first) < set(three)
    # the oldest worker is the one that goes
    gone = set(three) - set(two)
    assert gone & set(first)


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_max_requests_recycles_without_a_failure(server, klass):
    s = server("-k", klass, "-w", "2", "--max-requests", "50",
               "--max-requests-jitter", "10", workers_ready=2)
    first = s.workers()
    load = Load(s.port, threads=3, max_seconds=40)
    # several generations of recycled workers, under load all along
    wait_for(lambda: s.log().count("retires: its successor is ready") >= 4,
             timeout=40, what="4 recycled workers")
    load.stop()
    assert load.failures == []
    assert load.ok > 200
    # the first generation retired; on a busy machine its processes may
    # still be finishing their exit
    wait_for(lambda: not set(s.workers()) & set(first), timeout=10,
             what="the first workers to exit")


@pytest.mark.parametrize("how", ["hup", "max_requests"])
def test_slow_import_never_makes_a_request_wait(server, how):
    args = ["-w", "1"]
    if how == "max_requests":
        args += ["--max-requests", "40"]
    s = server(*args, app="slow_import:app", workers_ready=1)
    wait_for(lambda: get(s.port)[0] == 200, timeout=10, what="the app")
    first = s.workers()
    load = Load(s.port, threads=2, max_seconds=30)
    load.wait_for_requests(20)
    if how == "hup":
        s.send(signal.SIGHUP)
        log_has(s, "Reload complete", timeout=15)
        workers_settle(s, 1, exclude=first)
    else:
        # under load the successors retire in turn: two rounds of it
        wait_for(lambda: s.log().count("retires: its successor is ready")
                 >= 2, timeout=20, what="two recycles")
        wait_for(lambda: not set(s.workers()) & set(first), timeout=10,
                 what="the first worker to exit")
    load.wait_for_requests(load.total() + 20)
    load.stop()
    assert load.failures == []
    # the old worker served while the new one imported for 1.5 s
    assert load.slowest < 1.0, load.slowest


def test_reload_that_fails_keeps_the_old_workers(server, tmp_path):
    flag = tmp_path / "broken"
    marks = tmp_path / "marks"
    marks.mkdir()
    s = server("-w", "2", app="slow_import:app", workers_ready=2,
               env={"NARWHAL_TEST_IMPORT_SECONDS": "0",
                    "NARWHAL_TEST_BROKEN_FLAG": str(flag),
                    "NARWHAL_TEST_MARK_DIR": str(marks)})
    wait_for(lambda: len(os.listdir(marks)) == 2, what="2 apps loaded")
    old = s.workers()
    flag.write_text("")
    s.send(signal.SIGHUP)
    log_has(s, "Reload failed: the new workers could not load the app")
    assert "RuntimeError: this version of the app is broken" in s.log()
    workers_settle(s, 2)
    assert s.workers() == old, s.log()
    assert get(s.port)[0] == 200
    assert s.proc.poll() is None
    # once fixed, a reload goes through
    flag.unlink()
    s.send(signal.SIGHUP)
    log_has(s, "Reload complete")
    workers_settle(s, 2, exclude=old)


def test_hup_rereads_the_config_file(server, tmp_path):
    conf = tmp_path / "narwhal.conf.py"
    conf.write_text("workers = 2\n")
    s = server("-c", str(conf), workers_ready=2)
    conf.write_text("workers = 3\n")
    s.send(signal.SIGHUP)
    log_has(s, "Reload complete")
    workers_settle(s, 3)


def test_hup_while_a_reload_boots_is_done_after_it(server, tmp_path):
    """A second HUP that comes while the first reload's workers still
    import the app is not dropped: once they serve, the master reloads
    again and reads the configuration as it is then."""
    conf = tmp_path / "narwhal.conf.py"
    conf.write_text("workers = 1\n")
    s = server("-c", str(conf), app="slow_import:app", workers_ready=1)
    first = s.workers()
    s.send(signal.SIGHUP)
    log_has(s, "Hang up: Master")
    # the first reload's worker needs 1.5 s to import: this HUP lands
    # while it boots
    conf.write_text("workers = 2\n")
    s.send(signal.SIGHUP)
    log_has(s, "HUP deferred")
    wait_for(lambda: s.log().count("Reload complete") == 2, timeout=20,
             what="two reloads")
    workers_settle(s, 2, exclude=first)
    assert get(s.port)[0] == 200


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_sigkill_mid_load_loses_at_most_the_request_in_flight(server, klass):
    s = server("-k", klass, "-w", "2", workers_ready=2)
    load = Load(s.port, threads=4)
    load.wait_for_requests(100)
    victim = s.workers()[0]
    os.kill(victim, signal.SIGKILL)
    workers_settle(s, 2, exclude=[victim])
    load.wait_for_requests(load.total() + 100)
    load.stop()
    # a sync worker has one request in flight at most; an ev worker at
    # most one per client thread
    assert len(load.failures) <= (1 if klass == "sync" else 4), \
        load.failures


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_term_lets_requests_in_flight_and_queued_finish(server, klass):
    s = server("-k", klass, "-w", "1", workers_ready=1)
    results = {}

    def fetch(name, path):
        results[name] = get(s.port, path)

    slow = threading.Thread(target=fetch, args=("slow", "/sleep?2"))
    slow.start()
    time.sleep(0.3)
    # these wait in the listen backlog behind the slow request
    queued = [threading.Thread(target=fetch, args=("q%d" % i, "/pid"))
              for i in range(3)]
    for t in queued:
        t.start()
    time.sleep(0.3)
    s.send(signal.SIGTERM)
    for t in [slow] + queued:
        t.join(timeout=20)
    assert s.wait(timeout=20) == 0
    assert sorted(results) == ["q0", "q1", "q2", "slow"]
    for name, (status, _, _) in results.items():
        assert status == 200, name


@pytest.mark.parametrize("klass", ["sync", "ev", "tornado"])
def test_quick_stop_interrupts_a_busy_app(server, klass):
    if klass == "tornado":
        pytest.importorskip("tornado")
    s = server("-k", klass, "-w", "1", workers_ready=1)
    worker = s.workers()[0]
    answer = []
    t = threading.Thread(target=lambda: answer.append(http(
        s.port, b"GET /sleep?20 HTTP/1.1\r\nHost: x\r\n\r\n")))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    s.send(signal.SIGINT)
    assert s.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 5
    assert not alive(worker)
    t.join(timeout=5)
    # the connection closes without an answer, and no error is logged
    assert answer == [b""]
    if klass != "tornado":  # Tornado's WSGIContainer logs no request
        assert ("Request /sleep?20 interrupted: the worker is quitting"
                in s.log())
    assert "Traceback" not in s.log()


def test_usr2_then_term_twice(server, tmp_path):
    pidfile = tmp_path / "nw.pid"
    s = server("-w", "2", "-p", str(pidfile), workers_ready=2)
    masters = [s.pid]
    load = Load(s.port, threads=3, max_seconds=90)
    try:
        for round in range(2):
            old = masters[-1]
            load.wait_for_requests(load.total() + 50)
            os.kill(old, signal.SIGUSR2)
            second = tmp_path / "nw.pid.2"
            new = int(wait_for(lambda: second.exists()
                               and second.read_text().strip(),
                               what="the new master's pid file"))
            masters.append(new)
            assert new != old
            wait_for(lambda: len(children_of(new)) == 2,
                     what="the new master's workers")
            # both masters' workers share the sockets for a while
            load.wait_for_requests(load.total() + 50)
            os.kill(old, signal.SIGTERM)
            wait_for(lambda: not alive(old), timeout=20, what="old master")
            wait_for(lambda: s.log().count("Master has been promoted.")
                     == round + 1, what="promotion")
            wait_for(lambda: pidfile.exists()
                     and int(pidfile.read_text()) == new,
                     what="the pid file naming the new master")
            assert not second.exists()
        load.wait_for_requests(load.total() + 50)
    finally:
        load.stop()
        for pid in masters[1:]:
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: not alive(pid), timeout=20, what="master")
    assert load.failures == []
    assert s.log().count("Re-executing") == 2
    assert not pidfile.exists()


def test_pidfile(server, tmp_path):
    pidfile = tmp_path / "nw.pid"
    s = server("-p", str(pidfile))
    assert int(pidfile.read_text()) == s.pid
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    # a second server with the same pid file refuses to start
    code, out = run(["-b", "127.0.0.1:0", "-p", str(pidfile), "hello:app"])
    assert code == 1
    assert "Already running on PID %d" % s.pid in out
    s.stop()
    assert not pidfile.exists()


def test_stale_pidfile_is_replaced(server, tmp_path):
    pidfile = tmp_path / "nw.pid"
    pidfile.write_text("999999999\n")
    s = server("-p", str(pidfile))
    assert int(pidfile.read_text()) == s.pid


def test_daemon_mode(tmp_path):
    pidfile = tmp_path / "nw.pid"
    logfile = tmp_path / "error.log"
    p = subprocess.run([BINARY, "-D", "-b", "127.0.0.1:0", "-p", str(pidfile),
                        "--error-logfile", str(logfile), "-w", "2",
                        "hello:app"], cwd=APPS, timeout=20,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 0
    assert p.stdout == b"" and p.stderr == b""
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(),
                       what="the daemon's pid file"))
    try:
        # detached: another session than ours, its parent gone
        assert os.getsid(pid) != os.getsid(0)
        port = int(wait_for(lambda: re.search(
            r"Listening at: http://127\.0\.0\.1:(\d+)",
            logfile.read_text()), what="the log").group(1))
        wait_for(lambda: len(children_of(pid)) == 2, what="2 workers")
        assert get(port)[0] == 200
        # WINCH stops a daemon's workers, the master stays
        os.kill(pid, signal.SIGWINCH)
        wait_for(lambda: children_of(pid) == [], what="workers to stop")
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), timeout=20, what="the daemon")
    assert not pidfile.exists()
    assert "graceful stop of workers" in logfile.read_text()


def test_winch_is_ignored_without_daemon(server):
    s = server("-w", "1", workers_ready=1, env={})
    before = s.workers()
    s.send(signal.SIGWINCH)
    time.sleep(1.0)
    assert s.workers() == before


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_usr1_reopens_log_files(server, tmp_path, klass):
    logfile = tmp_path / "error.log"
    s = server("-k", klass, "--error-logfile", str(logfile), "-w", "1",
               wait=False)
    port = int(wait_for(lambda: logfile.exists() and re.search(
        r"Listening at: http://127\.0\.0\.1:(\d+)", logfile.read_text()),
        what="the log").group(1))
    wait_for(lambda: len(s.workers()) == 1, what="the worker")
    worker = s.workers()[0]
    os.rename(logfile, tmp_path / "error.log.1")
    s.send(signal.SIGUSR1)
    wait_for(lambda: logfile.exists(), what="a new log file")
    time.sleep(0.3)  # the worker reopens its own copy
    assert get(port)[0] == 200
    s.stop()
    text = logfile.read_text()
    # the master's lines after the reopen, and the worker's (it reopens its
    # own copy) go to the new file
    assert "Handling signal: term" in text
    assert "Worker exiting (pid: %d)" % worker in text
    old = (tmp_path / "error.log.1").read_text()
    assert "Handling signal: usr1" in old
    assert "Handling signal: term" not in old


def test_unix_socket_mode_from_umask(server, tmp_path):
    path = tmp_path / "nw.sock"
    s = server("-b", "unix:%s" % path, "-m", "0o077", bind=False, wait=False)
    wait_for(lambda: path.exists(), what="the socket")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    s.stop()
    assert not path.exists()


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6(server):
    s = server("-b", "[::1]:0", bind=False, wait=False)
    port = int(wait_for(lambda: re.search(
        r"Listening at: http://\[::1\]:(\d+) ", s.log()),
        what="the IPv6 listener").group(1))
    status, _, body = get(port, "/", host="::1")
    assert status == 200


def test_fd_socket(server):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    fd = lsock.fileno()
    os.set_inheritable(fd, True)
    s = server("-b", "fd://%d" % fd, bind=False, wait=False,
               pass_fds=(fd,))
    log_has(s, "Listening at: http://127.0.0.1:%d " % port)
    lsock.close()
    wait_for(lambda: len(s.workers()) == 1, what="the worker")
    assert get(port)[0] == 200


def test_systemd_socket_activation(tmp_path):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]

    def as_fd3():
        os.dup2(lsock.fileno(), 3)

    log = open(tmp_path / "log", "w+b")
    # LISTEN_PID must name the process that execs narwhal: the shell
    # execs it under its own pid
    p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" '
                          '"$@"', BINARY, "hello:app"], cwd=APPS,
                         stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=as_fd3, pass_fds=(3,))
    lsock.close()
    try:
        def text():
            log.seek(0)
            return log.read().decode()
        wait_for(lambda: "Listening at: http://127.0.0.1:%d " % port
                 in text(), what="the inherited socket: " + text())
        wait_for(lambda: len(children_of(p.pid)) == 1, what="the worker")
        assert get(port)[0] == 200
        # the worker did not see LISTEN_* (they were for the master)
        worker = children_of(p.pid)[0]
        with open("/proc/%d/environ" % worker, "rb") as f:
            assert b"LISTEN_FDS" not in f.read()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_reuse_port_workers_own_sockets(server, tmp_path, klass):
    marks = tmp_path / "marks"
    marks.mkdir()
    s = server("-k", klass, "-w", "2", "--reuse-port",
               env={"NARWHAL_TEST_MARK_DIR": str(marks)}, workers_ready=2)
    wait_for(lambda: len(os.listdir(marks)) == 2, what="2 apps imported")
    # every connection is accepted: none is queued on a socket nobody
    # accepts from
    pids = set()
    for _ in range(40):
        status, _, body = get(s.port, "/pid")
        assert status == 200
        pids.add(int(body))
    assert pids <= set(s.workers())


def test_process_titles(server):
    s = server("-w", "1", "-n", "shop", workers_ready=1)

    def cmdline(pid):
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode()

    assert cmdline(s.pid) == "narwhal: master [shop]"
    wait_for(lambda: cmdline(s.workers()[0]) == "narwhal: worker [shop]",
             what="the worker's title")
    with open("/proc/%d/comm" % s.pid) as f:
        assert f.read().strip() == "narwhal: master"


def test_default_title_is_the_app(server):
    s = server("-w", "1", workers_ready=1)
    with open("/proc/%d/cmdline" % s.pid, "rb") as f:
        assert f.read().split(b"\0")[0] == b"narwhal: master [hello:app]"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
def test_user_and_group(server):
    nobody = pwd.getpwnam("nobody")
    s = server("-w", "1", "-u", "nobody", "-g", str(nobody.pw_gid),
               workers_ready=1)
    assert get(s.port)[0] == 200
    worker = s.workers()[0]
    with open("/proc/%d/status" % worker) as f:
        status = f.read()
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M).groups()
    gids = re.search(r"^Gid:\s+(\d+)\s+(\d+)", status, re.M).groups()
    assert uids == (str(nobody.pw_uid),) * 2
    assert gids == (str(nobody.pw_gid),) * 2
    with open("/proc/%d/status" % s.pid) as f:
        assert re.search(r"^Uid:\s+0\s", f.read(), re.M)


def test_preload_imports_once_in_the_master(server, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    s = server("-w", "2", "--preload", app="slow_import:app",
               env={"NARWHAL_TEST_MARK_DIR": str(marks),
                    "NARWHAL_TEST_IMPORT_SECONDS": "0"}, workers_ready=2)
    assert get(s.port)[0] == 200
    assert os.listdir(marks) == [str(s.pid)]
    s.send(signal.SIGHUP)
    log_has(s, "preload_app")
    log_has(s, "Reload complete")


def test_max_worker_memory(server):
    s = server("-w", "1", "--max-worker-memory", "48", app="slow_import:app",
               env={"NARWHAL_TEST_IMPORT_SECONDS": "0"}, workers_ready=1)
    wait_for(lambda: get(s.port)[0] == 200, what="the app")
    big = s.workers()[0]
    assert get(s.port, "/grow")[0] == 200
    log_has(s, "Worker (pid:%d) uses" % big)
    assert "more than max_worker_memory (48 MiB): replacing it" in s.log()
    workers_settle(s, 1, exclude=[big])
    assert get(s.port)[0] == 200


def test_hup_sent_to_a_worker_does_not_kill_it(server):
    s = server("-w", "1", workers_ready=1)
    worker = s.workers()[0]
    os.kill(worker, signal.SIGHUP)
    time.sleep(0.5)
    assert s.workers() == [worker]
    assert get(s.port)[0] == 200
