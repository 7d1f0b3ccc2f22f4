"""Hello world, plus the worker's pid for tests that count workers."""
import os
import time

_MARK = os.environ.get("NARWHAL_TEST_MARK_DIR")
if _MARK:
    # tells the test this worker has imported the app
    open(os.path.join(_MARK, str(os.getpid())), "w").close()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = str(os.getpid()).encode()
    elif path == "/spin":
        # pure Python, never blocking: the GIL stays with this thread
        end = time.monotonic() + float(environ.get("QUERY_STRING") or "0.5")
        while time.monotonic() < end:
            pass
        body = str(os.getpid()).encode()
    elif path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
        body = str(os.getpid()).encode()
    else:
        body = b"Hello, World!\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


app = application
not_callable = 42
nothing = None
