"""Server hooks with Gunicorn's signatures, named from INI files as
hookmod:NAME and from Python config files as "hookmod.NAME"."""


def on_starting(server):
    pass


def on_reload(server):
    pass


def when_ready(server):
    pass


def pre_fork(server, worker):
    pass


def post_fork(server, worker):
    pass


def post_worker_init(worker):
    pass


def worker_int(worker):
    pass


def worker_abort(worker):
    pass


def pre_exec(server):
    pass


def pre_request(worker, req):
    pass


def post_request(worker, req, environ):
    pass


def child_exit(server, worker):
    pass


def worker_exit(server, worker):
    pass


def nworkers_changed(server, new_value, old_value):
    pass


def on_exit(server):
    pass


def ssl_context(config, default_ssl_context_factory):
    return default_ssl_context_factory()


def two_args(a, b):
    pass
