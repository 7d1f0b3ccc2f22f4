"""An app wrapped in wsgiref.validate.validator: any PEP 3333 slip of the
server (or of this app) raises an AssertionError in the worker."""
from wsgiref.validate import validator


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    errors = environ["wsgi.errors"]
    if path == "/read":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = inp.read(n)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/readlines":
        lines = inp.readlines()
        body = b"|".join(lines)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/iter":
        body = b"".join(line for line in inp)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/readline":
        parts = [inp.readline(), inp.readline(4), inp.readline()]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"/".join(parts)]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/gen":
        def gen():
            start_response("201 Created", [("Content-Type", "text/plain")])
            for i in range(5):
                yield b"%d," % i
        return gen()
    if path == "/errors":
        errors.write("a line for wsgi.errors\n")
        errors.writelines(["two\n", "lines\n"])
        errors.flush()
        start_response("204 No Content", [])
        return []
    if path == "/file":
        import io
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"wrapped file"), 4)
    if path == "/environ":
        keys = sorted(k for k in environ if not k.startswith("wsgi."))
        body = ",".join(keys).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


application = validator(_app)
