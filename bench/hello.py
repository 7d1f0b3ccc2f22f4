"""The benchmark app: hello world with a Content-Length; /1m answers a
1 MiB body (one bytes object), /pid the worker's pid."""
import os

MIB = b"x" * (1024 * 1024)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/1m":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(MIB)))])
        return [MIB]
    if environ["PATH_INFO"] == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app = application
