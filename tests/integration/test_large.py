"""Large bodies stream: a 1 GiB response and a 100 MiB chunked upload go
through a worker whose peak RSS grows by less than 64 MiB (32 MiB for the
ev class's generator response, pulled only as the socket takes it)."""
import hashlib
import os
import socket

import pytest

from helpers import parse_response

MIB = 1024 * 1024
MAX_GROWTH_KIB = 64 * 1024


# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
# default) before reuse, which would count as growth here.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=4"]))}


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def warm(s):
    """One small request so the worker's steady state is in its peak."""
    with socket.create_connection(("127.0.0.1", s.port), timeout=30) as c:
        c.sendall(b"GET /big?mib=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        while c.recv(MIB):
            pass


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_1gib_streamed_response(server, klass):
    s = server("-k", klass, app="responses:app", workers_ready=1,
               env=ASAN_ENV)
    worker = s.workers()[0]
    warm(s)
    before = peak_rss_kib(worker)
    buf = bytearray(MIB)
    view = memoryview(buf)
    total = 0
    head = b""
    tail = b""
    with socket.create_connection(("127.0.0.1", s.port), timeout=60) as c:
        c.sendall(b"GET /big?mib=1024 HTTP/1.1\r\nHost: x\r\n\r\n")
        while True:
            n = c.recv_into(view)
            if n == 0:
                break
            if len(head) < 512:
                head += bytes(view[:min(n, 512)])
            tail = (tail + bytes(view[max(0, n - 16):n]))[-16:]
            total += n
    head_len = head.index(b"\r\n\r\n") + 4
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head[:head_len]
    # 1024 chunks of 1 MiB, each framed by "100000\r\n" and "\r\n"
    assert total == head_len + 1024 * (MIB + 10) + 5
    assert tail.endswith(b"\r\n0\r\n\r\n")
    growth = peak_rss_kib(worker) - before
    limit = MAX_GROWTH_KIB if klass == "sync" else 32 * 1024
    assert growth < limit, "peak RSS grew by %d KiB" % growth


@pytest.mark.parametrize("klass", ["sync", "ev", "gthread"])
def test_100mib_chunked_upload(server, klass):
    s = server("-k", klass, app="responses:app", workers_ready=1,
               env=ASAN_ENV)
    worker = s.workers()[0]
    warm(s)
    before = peak_rss_kib(worker)
    piece = hashlib.sha256(b"narwhal").digest() * 8192  # 256 KiB
    frame = b"%x\r\n%s\r\n" % (len(piece), piece)
    n = 100 * MIB // len(piece)
    md5 = hashlib.md5()
    for _ in range(n):
        md5.update(piece)
    with socket.create_connection(("127.0.0.1", s.port), timeout=60) as c:
        c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(n):
            c.sendall(frame)
        c.sendall(b"0\r\n\r\n")
        raw = b""
        while True:
            data = c.recv(65536)
            if not data:
                break
            raw += data
    status, _, body = parse_response(raw)
    assert status == 200
    assert body == ("%d %s" % (100 * MIB, md5.hexdigest())).encode()
    growth = peak_rss_kib(worker) - before
    assert growth < MAX_GROWTH_KIB, "peak RSS grew by %d KiB" % growth
