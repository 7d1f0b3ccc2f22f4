"""Routes that exercise the response side: framing, status codes, headers,
write(), exc_info, close(), file_wrapper, large bodies."""
import hashlib
import os
import sys
from urllib.parse import parse_qs

CLOSED = os.environ.get("NARWHAL_TEST_CLOSE_LOG")


def note_closed(what):
    if CLOSED:
        with open(CLOSED, "a") as f:
            f.write(what + "\n")


class Tracked:
    """An iterable whose close() leaves a mark."""

    def __init__(self, name, chunks, fail_at=None):
        self.name, self.chunks, self.fail_at = name, chunks, fail_at

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("failing on purpose at chunk %d" % i)
            yield chunk

    def close(self):
        note_closed(self.name)


class NoReadFile:
    """A file whose read() fails: only sendfile() can send it."""

    def __init__(self, path):
        self.f = open(path, "rb")

    def fileno(self):
        return self.f.fileno()

    def tell(self):
        return self.f.tell()

    def seek(self, n):
        return self.f.seek(n)

    def read(self, n=-1):
        raise OSError("read() called: sendfile was not used")

    def close(self):
        self.f.close()
        note_closed("noread")


CALLS = os.environ.get("NARWHAL_TEST_CALL_LOG")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if CALLS:
        with open(CALLS, "a") as f:
            f.write(path + "\n")
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}

    if path == "/cl":
        # declares n bytes, sends `send` bytes in two chunks
        n, send = int(q["n"]), int(q["send"])
        start_response("200 OK", [("Content-Length", str(n))])
        half = send // 2
        return [b"a" * half, b"b" * (send - half)]
    if path == "/chunks":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"", b"two,", b"three"])
    if path == "/status":
        code = q["code"]
        headers = [("Content-Length", "4")] if "cl" in q else []
        start_response(code + " Whatever", headers)
        return [b"body"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        write(b"")
        return [b"returned"]
    if path == "/write-gen":
        def gen():
            write = start_response("200 OK", [])
            write(b"w1-")
            yield b"y1-"
            write(b"w2-")
            yield b"y2"
        return gen()
    if path == "/bad-header":
        name = q.get("name", "X-Test")
        value = q.get("value", "ok").replace("CR", "\r").replace(
            "LF", "\n").replace("NUL", "\0")
        name = name.replace("CR", "\r").replace("LF", "\n").replace(
            "NUL", "\0")
        start_response("200 OK", [(name, value)])
        return [b"never"]
    if path == "/bad-status":
        start_response(q["s"].replace("CRLF", "\r\n"), [])
        return [b"never"]
    if path == "/exc-before":
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("caught by the app")
        except ValueError:
            start_response("503 App Error", [("X-Second", "2")],
                           sys.exc_info())
        return [b"app error page"]
    if path == "/exc-after":
        write = start_response("200 OK", [])
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Error", [], sys.exc_info())
        return [b"never"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/hop":
        start_response("200 OK", [
            ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"), ("Server", "spoofed"),
            ("Date", "yesterday"), ("Upgrade", "h2c"), ("TE", "trailers"),
            ("Trailers", "X"), ("Proxy-Authenticate", "Basic"),
            ("X-Kept", "yes"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/websocket-upgrade":
        start_response("200 OK", [("Upgrade", "websocket"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    if path == "/tracked":
        start_response("200 OK", [])
        return Tracked("ok", [b"a", b"b", b"c"])
    if path == "/tracked-fail":
        start_response("200 OK", [])
        return Tracked("fail", [b"a", b"b", b"c"], fail_at=1)
    if path == "/tracked-first-fail":
        start_response("200 OK", [])
        return Tracked("first-fail", [b"a"], fail_at=0)
    if path == "/tracked-slow":
        # many chunks: the client goes away in the middle
        start_response("200 OK", [])
        return Tracked("slow", [b"x" * 65536] * 2000)
    if path == "/file":
        f = open(q["path"], "rb")
        f.seek(int(q.get("offset", 0)))
        headers = []
        if "length" in q:
            headers.append(("Content-Length", q["length"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/file-noread":
        f = NoReadFile(q["path"])
        f.seek(int(q.get("offset", 0)))
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](f)
    if path == "/file-bytesio":
        import io
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory"), 3)
    if path == "/big":
        mib = int(q["mib"])
        chunk = b"z" * (1024 * 1024)
        headers = []
        if "cl" in q:
            headers.append(("Content-Length", str(mib * len(chunk))))
        start_response("200 OK", headers)
        # a fresh object per chunk: a server that pulled ahead of the
        # socket would hold them all
        return (chunk[:-1] + b"z" for _ in range(mib))
    if path == "/upload":
        inp = environ["wsgi.input"]
        h = hashlib.md5()
        total = 0
        while True:
            data = inp.read(256 * 1024)
            if not data:
                break
            total += len(data)
            h.update(data)
        body = ("%d %s" % (total, h.hexdigest())).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        limited = inp.readline(3)
        rest_of_line = inp.readline()
        some = inp.readlines(1)
        others = [line for line in inp]
        out = repr([first, limited, rest_of_line, some, others]).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]
    if path == "/read-sizes":
        inp = environ["wsgi.input"]
        parts = [inp.read(0), inp.read(1), inp.read(2), inp.read(None),
                 inp.read()]
        out = repr(parts).encode()
        start_response("200 OK", [("Content-Length", str(len(out)))])
        return [out]
    if path == "/no-read":
        # answers without reading the body
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
