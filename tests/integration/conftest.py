import os
import signal

import pytest

from helpers import BINARY, Server


def pytest_configure(config):
    if not os.access(BINARY, os.X_OK):
        raise pytest.UsageError("narwhal is not built at %s (run make)"
                                % BINARY)


@pytest.fixture
def server(tmp_path):
    """server(args..., app=...) starts narwhal; all are stopped at the end."""
    started = []

    def start(*args, **kw):
        s = Server(tmp_path, args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        workers = s.workers()
        s.stop(signal.SIGTERM, timeout=5)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
