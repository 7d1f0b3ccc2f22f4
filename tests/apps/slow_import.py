"""An app that takes 1.5 s to import, like a large Django project."""
import os
import time

time.sleep(float(os.environ.get("NARWHAL_TEST_IMPORT_SECONDS", "1.5")))

_FLAG = os.environ.get("NARWHAL_TEST_BROKEN_FLAG")
if _FLAG and os.path.exists(_FLAG):
    raise RuntimeError("this version of the app is broken")

_MARK = os.environ.get("NARWHAL_TEST_MARK_DIR")
if _MARK:
    open(os.path.join(_MARK, str(os.getpid())), "w").close()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/grow":
        # keep 64 MiB alive in this worker
        global _ballast
        _ballast = bytearray(64 << 20)
        for i in range(0, len(_ballast), 4096):
            _ballast[i] = 1
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
