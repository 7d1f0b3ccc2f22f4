"""--reload (Gunicorn's code reloader): a worker whose code changed is
replaced by one that imports it afresh, without a gap; extra files are
watched too; an app that fails to load answers 500 until it is fixed."""
import os
import time

import pytest

from helpers import Load, get, wait_for

APP = '''
import os
VERSION = %r


def app(environ, start_response):
    body = ("%%s %%d" %% (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def write(path, text):
    """Write text with a modification time clearly after the last one
    (some filesystems keep whole seconds)."""
    before = os.stat(path).st_mtime if os.path.exists(path) else 0
    path.write_text(text)
    os.utime(path, (time.time(), max(time.time(), before + 2)))


def body(s):
    status, _, data = get(s.port, "/")
    return status, data.decode()


def replace(path, text):
    """As an editor saving by rename: a new file put over the old one."""
    tmp = path.with_suffix(".swp")
    write(tmp, text)
    os.utime(tmp, (time.time(), os.stat(path).st_mtime + 2))
    os.replace(tmp, path)


@pytest.mark.parametrize("klass,engine,save", [
    ("sync", "auto", write), ("ev", "poll", write),
    ("sync", "inotify", replace)])
def test_changed_module_is_reloaded_without_a_gap(server, tmp_path, klass,
                                                  engine, save):
    app = tmp_path / "reloadme.py"
    write(app, APP % "v1")
    s = server("-k", klass, "--reload", "--reload-engine", engine,
               "--chdir", str(tmp_path), app="reloadme:app",
               workers_ready=1)
    assert "reload (from" not in s.log()  # no "not implemented" warning
    wait_for(lambda: body(s)[1].startswith("v1"), what="v1")
    first = s.workers()
    time.sleep(1.2)  # the reloader has taken its first look
    load = Load(s.port, threads=2, max_seconds=30)
    load.wait_for_requests(20)
    save(app, APP % "v2")
    wait_for(lambda: "Worker reloading: %s modified" % app in s.log(),
             what="the reload line")
    wait_for(lambda: body(s)[1].startswith("v2"), timeout=15, what="v2")
    load.wait_for_requests(load.total() + 20)
    load.stop()
    # the old worker served until its successor was ready
    assert load.failures == []
    wait_for(lambda: not set(s.workers()) & set(first), what="old gone")


def test_without_reload_nothing_is_watched(server, tmp_path):
    app = tmp_path / "reloadme.py"
    write(app, APP % "v1")
    s = server("--chdir", str(tmp_path), app="reloadme:app",
               workers_ready=1)
    first = s.workers()
    time.sleep(1.2)
    write(app, APP % "v2")
    time.sleep(2.5)
    assert body(s)[1].startswith("v1")
    assert s.workers() == first


def test_extra_file_triggers_a_reload(server, tmp_path):
    app = tmp_path / "reloadme.py"
    write(app, APP % "v1")
    extra = tmp_path / "settings.toml"
    write(extra, "a = 1\n")
    s = server("--reload", "--reload-extra-file", str(extra), "--chdir",
               str(tmp_path), app="reloadme:app", workers_ready=1)
    pid = body(s)[1].split()[1]
    time.sleep(1.2)
    write(extra, "a = 2\n")
    wait_for(lambda: "Worker reloading: %s modified" % extra in s.log(),
             what="the reload line")
    wait_for(lambda: body(s)[1].split()[1] != pid, timeout=15,
             what="a new worker")


def test_broken_app_answers_500_until_fixed(server, tmp_path):
    app = tmp_path / "reloadme.py"
    write(app, "def app(environ, start_response:\n")  # a SyntaxError
    s = server("--reload", "--chdir", str(tmp_path), app="reloadme:app",
               workers_ready=1)
    wait_for(lambda: body(s)[0] == 500, what="the 500")
    assert "the app failed to load" in body(s)[1]
    assert "SyntaxError" in s.log()
    assert s.proc.poll() is None
    write(app, APP % "fixed")
    wait_for(lambda: (lambda r: r[0] == 200 and r[1].startswith("fixed"))(
        body(s)), timeout=15, what="the fix")


def test_broken_app_without_reload_stops_the_server(server, tmp_path):
    app = tmp_path / "reloadme.py"
    write(app, "def app(environ, start_response:\n")
    s = server("--chdir", str(tmp_path), app="reloadme:app", wait=False)
    assert s.wait(timeout=15) == 4
