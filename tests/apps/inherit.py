"""Says whether the worker inherited the arbiter's config module (a Python
config file is run in the arbiter, whose interpreter the workers share)."""
import os
import sys


def app(environ, start_response):
    mod = sys.modules.get("__config__")
    body = "%s %s %d" % (getattr(mod, "marker", "-"),
                         getattr(mod, "arbiter_pid", "-"), os.getppid())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
