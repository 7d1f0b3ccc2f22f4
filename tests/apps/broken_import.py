"""An app module whose import fails: the traceback must reach the log."""


def helper():
    raise ValueError("broken on purpose at import time")


helper()
