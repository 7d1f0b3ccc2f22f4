"""Helpers for driving the real narwhal binary over loopback."""
import os
import re
import signal
import socket
import subprocess
import time

BUILDDIR = os.environ.get("NARWHAL_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("NARWHAL_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(BUILDDIR, "narwhal")
# e.g. NARWHAL_WRAPPER="valgrind --trace-children=yes --log-file=/tmp/vg.%p"
WRAPPER = os.environ.get("NARWHAL_WRAPPER", "").split()
# built with --enable-sanitizers: ASan's allocator (redzones, quarantine)
# makes RSS figures meaningless
SANITIZED = os.environ.get("NARWHAL_SANITIZERS") == "yes"
APPS = os.path.join(SRCDIR, "tests", "apps")
TEST_PLUGINS = os.path.join(BUILDDIR, "tests", "plugins", ".libs")

LOG_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] "
    r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] (.*)$")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s"
                         % (timeout, what))


def children_of(pid):
    """Pids whose parent is pid (the workers of a master)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return sorted(int(p) for p in f.read().split())
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class Server:
    """One narwhal master started for a test; always stopped by its pid."""

    def __init__(self, tmp_path, args, app="hello:app", cwd=APPS, env=None,
                 bind=True, wait=True, workers_ready=None, pass_fds=()):
        self.log_path = tmp_path / ("narwhal-%d.log" % id(self))
        self.argv = WRAPPER + [BINARY]
        if bind:
            self.argv += ["-b", "127.0.0.1:0"]
        self.argv += list(args)
        if app is not None:
            self.argv.append(app)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(self.argv, cwd=cwd, env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     pass_fds=pass_fds)
        self.port = None
        if wait and bind:
            self.port = int(wait_for(self._listening_port, what=(
                "narwhal to listen: " + self.log())))
        if workers_ready:
            wait_for(lambda: len(self.workers()) >= workers_ready,
                     what="%d workers" % workers_ready)

    def _listening_port(self):
        if self.proc.poll() is not None:
            raise AssertionError("narwhal exited with %s:\n%s"
                                 % (self.proc.returncode, self.log()))
        m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+) ", self.log())
        return m and m.group(1)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        return self.log().splitlines()

    @property
    def pid(self):
        return self.proc.pid

    def workers(self):
        return children_of(self.proc.pid)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait(self, timeout=15):
        return self.proc.wait(timeout=timeout)

    def send(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def run(args, cwd=APPS, env=None, timeout=30):
    """Run narwhal to its end: (exit code, output)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run(WRAPPER + [BINARY] + list(args), cwd=cwd, env=full_env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def http(port, raw, timeout=10.0, host="127.0.0.1"):
    """Send raw bytes, read until the server closes: the raw response."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse_response(raw):
    """(status, headers dict with lower-case names, body) of one response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(body):
    out = b""
    while True:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2:]


def get(port, path="/", headers=b"", host="127.0.0.1"):
    """One request on its own connection (closed after the response, also
    by a class that keeps connections)."""
    raw = http(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
               b"Connection: close\r\n" + headers + b"\r\n", host=host)
    return parse_response(raw)


def exchange(port, raw, timeout=10.0, half_close=True, host="127.0.0.1"):
    """Send raw bytes (then half-close), read until the server closes.  A
    reset after the server's last bytes still returns what arrived."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def parse_responses(raw, head_first=False):
    """Every response in a stream: [(status, headers, body)], header names
    lower-cased.  1xx responses are listed too.  A response with neither
    Content-Length nor chunked framing runs to the end."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("truncated response head: %r" % raw[:200])
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200 or status in (204, 304) or (head_first and not out):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        out.append((status, headers, body))
        raw = rest
    return out


class Load:
    """Clients requesting in a loop from `threads` threads, one connection
    per request, until stop(), `max_requests` or `max_seconds`: bounded.
    Records every failure and the slowest request."""

    def __init__(self, port, path="/", threads=4, max_requests=1000000,
                 max_seconds=60.0, host="127.0.0.1"):
        import threading
        self.port, self.path, self.host = port, path, host
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.ok = 0
        self.failures = []
        self.slowest = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        raw = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % self.path).encode()
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            with self._lock:
                if self.ok + len(self.failures) >= self.max_requests:
                    return
            t0 = time.monotonic()
            try:
                status = parse_response(http(self.port, raw, host=self.host))[0]
                error = None if status == 200 else "status %d" % status
            except Exception as e:  # any failure counts
                error = repr(e)
            took = time.monotonic() - t0
            with self._lock:
                self.slowest = max(self.slowest, took)
                if error is None:
                    self.ok += 1
                else:
                    self.failures.append(error)

    def total(self):
        with self._lock:
            return self.ok + len(self.failures)

    def wait_for_requests(self, n, timeout=20):
        wait_for(lambda: self.total() >= n, timeout=timeout,
                 what="%d requests" % n)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return self
