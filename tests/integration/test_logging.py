"""Logging: every access-log atom byte for byte, the JSON access log,
USR1 reopening moved files, capture_output, syslog, and the logconfig
settings handed to Python's logging."""
import json
import os
import re
import signal
import socket
import time

import pytest

from helpers import APPS, BUILDDIR, http, parse_response, wait_for
from helpers import get as _get

KLASSES = ["sync"] + (["ev"] if os.path.exists(
    os.path.join(BUILDDIR, "plugins", "ev", ".libs", "ev.so")) else [])


@pytest.fixture(params=KLASSES)
def klass(request):
    return request.param


def get(port, path="/", headers=b""):
    """One request on its own connection, whatever the class keeps."""
    return _get(port, path, headers=headers + b"Connection: close\r\n")

ALL_ATOMS = ("%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|"
             "%(B)s|%(b)s|%(f)s|%(a)s|%(T)s|%(M)s|%(D)s|%(L)s|%(p)s|"
             "%({x-in}i)s|%({Content-Type}o)s|%({PATH_INFO}e)s|"
             "%({wsgi.url_scheme}e)s|%({x-none}i)s|%(zz)s|%(s)5s|%(B)d|%%")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def lines_of(path, n, timeout=10):
    return wait_for(lambda: (lambda ls: ls if len(ls) >= n else None)(
        read(path).splitlines()), timeout=timeout,
        what="%d line(s) in %s" % (n, path))


def started(server, path, *args, **kw):
    """A server whose error log goes to path: its port read from there."""
    s = server(*args, wait=False, **kw)
    s.port = int(wait_for(lambda: (lambda m: m and m.group(1))(re.search(
        r"Listening at: http://127\.0\.0\.1:(\d+) ", read(path))),
        what="narwhal to listen: " + s.log()))
    wait_for(lambda: len(s.workers()) >= 1, what="a worker")
    return s


def test_every_access_log_atom(server, tmp_path, klass):
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), "--access-logformat",
               ALL_ATOMS, workers_ready=1)
    worker = s.workers()[0]
    raw = (b"GET /a%20b/c?x=1&y=%22 HTTP/1.1\r\nHost: h\r\n"
           b"Connection: close\r\n"
           b"Authorization: Basic Ym9iOnB3\r\n"  # bob:pw
           b"Referer: http://r/\"q\"\r\nUser-Agent: ua/1 \\x\r\n"
           b"X-In: v\"1\r\n\r\n")
    status, _, body = parse_response(http(s.port, raw))
    assert status == 200
    line = lines_of(log, 1)[0]
    fields = line.split("|")
    t, T, M, D, L = fields[3], fields[14], fields[15], fields[16], fields[17]
    assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d "
                        r"[+-]\d{4}\]", t), t
    assert int(T) == int(D) // 1000000
    assert int(M) == int(D) // 1000
    assert L == "%d.%06d" % (int(D) // 1000000, int(D) % 1000000)
    expected = ("127.0.0.1|-|bob|%s|GET /a%%20b/c?x=1&y=%%22 HTTP/1.1|GET|"
                "/a b/c|x=1&y=%%22|HTTP/1.1|200|%d|%d|http://r/\\\"q\\\"|"
                "ua/1 \\x|%s|%s|%s|%s|<%d>|v\\\"1|text/plain|/a b/c|http|"
                "-|-|  200|%d|%%" % (t, len(body), len(body), T, M, D, L,
                                     worker, len(body)))
    assert line == expected


def test_default_format_and_empty_body(server, tmp_path, klass):
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), workers_ready=1)
    get(s.port, "/", headers=b"User-Agent: curl/8\r\n")
    line = lines_of(log, 1)[0]
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[[^]]+\] "GET / HTTP/1\.1" 200 14 "-" '
        r'"curl/8"', line), line


def test_refused_request_is_logged(server, tmp_path, klass):
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), "--access-logformat",
               "%(r)s %(s)s %(B)s", workers_ready=1)
    # refused after its head was read (a bad chunk size)
    http(s.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert lines_of(log, 1)[0] == "POST / HTTP/1.1 400 0"


def test_access_log_to_stdout(server, tmp_path):
    s = server("--access-logfile", "-", "--access-logformat",
               "ACCESS %(m)s %(U)s", workers_ready=1)
    get(s.port, "/stdout")
    wait_for(lambda: "ACCESS GET /stdout" in s.log(), what="stdout line")


def test_json_access_log_escaping(server, tmp_path, klass):
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), "--access-log-json",
               workers_ready=1)
    ua = b'a "quoted" \\ back\tslash \xe9'
    raw = (b"GET /p%22q%5C?x=%22y%22 HTTP/1.1\r\nHost: h\r\n"
           b"Connection: close\r\n"
           b"User-Agent: " + ua + b"\r\nReferer: r\r\n\r\n")
    parse_response(http(s.port, raw))
    line = lines_of(log, 1)[0]
    rec = json.loads(line)  # valid JSON, one object a line
    assert rec["user_agent"] == ua.decode("latin-1")
    assert rec["path"] == '/p"q\\'
    assert rec["query"] == "x=%22y%22"
    assert rec["request"] == "GET /p%22q%5C?x=%22y%22 HTTP/1.1"
    assert rec["status"] == 200 and rec["bytes"] == 14
    assert rec["referer"] == "r" and rec["user"] == "-"
    assert rec["method"] == "GET" and rec["protocol"] == "HTTP/1.1"
    assert isinstance(rec["duration_us"], int)
    # control bytes are escaped, never raw, in the line
    assert "\t" not in line and "\\t" in line


def test_json_with_a_format(server, tmp_path, klass):
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), "--access-log-json",
               "--access-logformat",
               '{"ua": "%(a)s", "h": "%({x-h}i)s", "s": %(s)s}',
               workers_ready=1)
    get(s.port, "/", headers=b'User-Agent: "x"\r\nX-H: \\\r\n')
    assert json.loads(lines_of(log, 1)[0]) == {"ua": '"x"', "h": "\\",
                                               "s": 200}


def test_json_precision_never_cuts_an_escape(server, tmp_path, klass):
    """A precision counts characters, an escape is one: the line stays
    valid JSON wherever the cut falls."""
    log = tmp_path / "access.log"
    s = server("-k", klass, "--access-logfile", str(log), "--access-log-json",
               "--access-logformat",
               '{"a2": "%(a).2s", "a3": "%(a).3s", "a4": "%(a).4s", '
               '"w": "%(a)8.3s", "u1": "%(U).1s", "u2": "%(U).2s"}',
               workers_ready=1)
    get(s.port, "/%01ab", headers=b'User-Agent: x"\\\ty\r\n')
    rec = json.loads(lines_of(log, 1)[0])
    assert rec == {"a2": 'x"', "a3": 'x"\\', "a4": 'x"\\\t',
                   "w": '     x"\\', "u1": "/", "u2": "/\x01"}


def test_bad_access_log_format_is_refused(tmp_path):
    from helpers import run
    code, out = run(["--access-logfile", "-", "--access-logformat",
                     "%(h)s %(B)x", "-b", "127.0.0.1:0", "hello:app"])
    assert code == 1
    assert "access_log_format" in out


def test_usr1_reopens_moved_logs(server, tmp_path):
    access = tmp_path / "access.log"
    error = tmp_path / "error.log"
    s = started(server, error, "--access-logfile", str(access),
                "--error-logfile", str(error), "--access-logformat", "%(U)s")
    get(s.port, "/before")
    lines_of(access, 1)
    os.rename(access, tmp_path / "access.log.1")
    os.rename(error, tmp_path / "error.log.1")
    s.send(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(access) and os.path.exists(error),
             what="the logs reopened")
    # the worker reopens on its next wake-up; a request is one
    for i in range(50):
        get(s.port, "/after")
        if "/after" in read(access):
            break
        time.sleep(0.1)
    # the new file holds only lines written after the reopen
    assert set(read(access).splitlines()) == {"/after"}
    assert "/before" in read(tmp_path / "access.log.1")
    s.send(signal.SIGHUP)
    wait_for(lambda: "Handling signal: hup" in read(error),
             what="the error log reopened")


def test_capture_output(server, tmp_path):
    error = tmp_path / "error.log"
    conf = tmp_path / "conf.py"
    conf.write_text("def post_worker_init(worker):\n"
                    "    print('printed by a hook', flush=True)\n"
                    "    import sys\n"
                    "    print('to stderr', file=sys.stderr, flush=True)\n")
    s = started(server, error, "-c", str(conf), "--capture-output",
                "--error-logfile", str(error))
    wait_for(lambda: "printed by a hook" in read(error)
             and "to stderr" in read(error), what="captured output")
    assert "printed by a hook" not in s.log()


def test_syslog_udp(server, tmp_path, klass):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    try:
        s = server("-k", klass, "--log-syslog", "--log-syslog-to",
                   "udp://127.0.0.1:%d" % port, "--log-syslog-prefix",
                   "my:app", "--log-syslog-facility", "local3",
                   "--access-logformat", "%(m)s %(U)s", workers_ready=1)
        get(s.port, "/syslogged")
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got.append(sock.recv(65536))
            if any(b"access" in g for g in got):
                break
        # local3 (19) * 8 + info (6) = 158; the prefix as given (Gunicorn
        # turns ':' into '.' only in proc_name)
        start = b"<158>gunicorn.my:app.error: [%d] Starting narwhal" % s.pid
        assert any(g.startswith(start) for g in got), got
        acc = [g for g in got if b".access:" in g][0]
        assert re.fullmatch(rb"<158>gunicorn\.my:app\.access: \[\d+\] "
                            rb"GET /syslogged\x00", acc), acc
    finally:
        sock.close()


def test_syslog_without_access(server, tmp_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    port = sock.getsockname()[1]
    try:
        s = server("--log-syslog", "--log-syslog-to",
                   "udp://127.0.0.1:%d" % port, "-n", "my:proc",
                   "--disable-redirect-access-to-syslog", workers_ready=1)
        get(s.port, "/")
        time.sleep(0.5)
        got = []
        try:
            while True:
                got.append(sock.recv(65536))
        except socket.timeout:
            pass
        assert got and not any(b".access:" in g for g in got)
        # no prefix: the process name, ':' as '.'
        assert all(b">gunicorn.my.proc.error: " in g for g in got), got
    finally:
        sock.close()


def test_logconfig_dict(server, tmp_path):
    out = tmp_path / "py.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "logconfig_dict = {\n"
        "  'formatters': {'mine': {'format': 'PY %%(name)s "
        "%%(levelname)s %%(message)s'}},\n"
        "  'handlers': {'f': {'class': 'logging.FileHandler',\n"
        "                     'filename': %r, 'formatter': 'mine'}},\n"
        "  'loggers': {'gunicorn.error': {'handlers': ['f'],\n"
        "                                 'level': 'INFO',\n"
        "                                 'propagate': False},\n"
        "              'gunicorn.access': {'handlers': ['f'],\n"
        "                                  'level': 'INFO',\n"
        "                                  'propagate': False}}}\n"
        "access_log_format = 'ACC %%(U)s'\n" % str(out))
    s = started(server, out, "-c", str(conf))
    get(s.port, "/dict")
    wait_for(lambda: "PY gunicorn.access INFO ACC /dict" in read(out),
             what="the access line through Python's logging")
    text = read(out)
    assert "PY gunicorn.error INFO Booting worker with pid" in text
    # moved and reopened on USR1 too
    os.rename(out, tmp_path / "py.log.1")
    s.send(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(out), what="py.log reopened")


def test_logconfig_file(server, tmp_path):
    """--log-config: a logging.config.fileConfig INI file, as Gunicorn."""
    out = tmp_path / "py.log"
    cfg = tmp_path / "logging.conf"
    cfg.write_text(
        "[loggers]\nkeys=root,error,access\n\n"
        "[handlers]\nkeys=f\n\n"
        "[formatters]\nkeys=ini\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_error]\nlevel=INFO\nhandlers=f\npropagate=0\n"
        "qualname=gunicorn.error\n\n"
        "[logger_access]\nlevel=INFO\nhandlers=f\npropagate=0\n"
        "qualname=gunicorn.access\n\n"
        "[handler_f]\nclass=FileHandler\nformatter=ini\nargs=(%r,)\n\n"
        "[formatter_ini]\nformat=INI %%(name)s %%(message)s\n" % str(out))
    s = started(server, out, "--log-config", str(cfg),
                "--access-logformat", "ACC %(U)s")
    get(s.port, "/ini")
    wait_for(lambda: "INI gunicorn.access ACC /ini" in read(out),
             what="the access line through fileConfig's handler")
    assert "INI gunicorn.error Booting worker with pid" in read(out)


def test_logconfig_json(server, tmp_path):
    out = tmp_path / "py.log"
    cfg = tmp_path / "log.json"
    cfg.write_text(json.dumps({
        "version": 1,
        "formatters": {"j": {"format": "J %(levelname)s %(message)s"}},
        "handlers": {"f": {"class": "logging.FileHandler",
                           "filename": str(out), "formatter": "j"}},
        "loggers": {"gunicorn.error": {"handlers": ["f"],
                                       "propagate": False,
                                       "level": "INFO"}}}))
    started(server, out, "--log-config-json", str(cfg))
    wait_for(lambda: "J INFO Booting worker" in read(out),
             what="the error log through Python's logging")


def test_bad_logconfig_is_refused(tmp_path):
    from helpers import run
    cfg = tmp_path / "log.json"
    cfg.write_text("[1, 2]")
    code, out = run(["--log-config-json", str(cfg), "-b", "127.0.0.1:0",
                     "hello:app"])
    assert code == 1
    assert "logging configuration" in out
