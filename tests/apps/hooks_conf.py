"""A config whose every hook appends its name and arguments to a file
(HOOKS_OUT), one JSON object a line; test_hooks.py reads it."""
import json
import os

import narwhal

OUT = os.environ["HOOKS_OUT"]
workers = int(os.environ.get("HOOKS_WORKERS", "1"))


def _w(worker):
    return {"pid": worker.pid, "ppid": worker.ppid, "age": worker.age,
            "alive": worker.alive, "booted": worker.booted, "nr": worker.nr,
            "cfg_workers": worker.cfg.workers if worker.cfg else None}


def _s(server):
    return {"pid": server.pid, "num_workers": server.num_workers,
            "workers": sorted(p for p in server.WORKERS),
            "listeners": [str(l) for l in server.LISTENERS],
            "cfg_workers": server.cfg.workers,
            "app": server.app.app_uri}


def _emit(name, **kw):
    kw["hook"] = name
    kw["in_pid"] = os.getpid()
    with open(OUT, "a") as f:
        f.write(json.dumps(kw, sort_keys=True) + "\n")


def on_starting(server):
    _emit("on_starting", server=_s(server))


def on_reload(server):
    _emit("on_reload", server=_s(server))


def when_ready(server):
    _emit("when_ready", server=_s(server))


def pre_fork(server, worker):
    _emit("pre_fork", worker=_w(worker))


def post_fork(server, worker):
    worker.mark = "set in post_fork"
    _emit("post_fork", worker=_w(worker), uid=os.getuid(),
          server_pid=server.pid)


def post_worker_init(worker):
    _emit("post_worker_init", worker=_w(worker),
          mark=getattr(worker, "mark", None))


def worker_int(worker):
    _emit("worker_int", worker=_w(worker))


def worker_abort(worker):
    _emit("worker_abort", worker=_w(worker))


def pre_exec(server):
    _emit("pre_exec", server=_s(server))


def pre_request(worker, req):
    worker.log.info("pre_request %s %s", req.method, req.path)
    _emit("pre_request", worker=_w(worker), method=req.method, uri=req.uri,
          path=req.path, query=req.query, version=list(req.version),
          headers=req.headers, remote_addr=req.remote_addr)


def post_request(worker, req, environ, resp):
    _emit("post_request", worker=_w(worker), method=req.method,
          path=req.path, environ_path=environ.get("PATH_INFO"),
          status=resp.status, status_code=resp.status_code,
          headers=resp.headers, sent=resp.sent)


def child_exit(server, worker):
    _emit("child_exit", worker=_w(worker))


def worker_exit(server, worker):
    _emit("worker_exit", worker=_w(worker), server_pid=server.pid)


def nworkers_changed(server, new_value, old_value):
    _emit("nworkers_changed", new=new_value, old=old_value)


def on_exit(server):
    _emit("on_exit", server=_s(server))
