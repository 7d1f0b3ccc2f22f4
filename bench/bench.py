#!/usr/bin/env python3
"""narwhal against Debian's gunicorn on the same hello-world app.

Not a test: it only prints.  One worker each, the server pinned to one CPU
and wrk to another, Connection: close (the sync worker closes after every
request, as Gunicorn's does).  For each server it prints requests/s, p99
latency, idle and peak RSS of the process tree, and CPU time per request
(utime + stime of the server's process tree / requests served).

    bench/bench.py [--narwhal build/narwhal] [--duration 10] [--connections 8]

--keepalive [--rounds N]: keep-alive, wrk -t1 -c50: narwhal's ev, gthread
(--threads 4) and tornado-compat classes against gunicorn's sync, gthread
(--threads 4), gevent (when python3-gevent is installed) and tornado
workers and nginx (nginx-light, one worker, `return 200`,
bench/nginx.conf) as the no-Python ceiling; then a 1 MiB body, ev
against gthread; --rounds N then runs ev and nginx in turn N times and
prints the median of their CPU per request (one run moves by 20 % or more
on a shared machine).  --spread: the share of requests each of 4 ev workers
served (EPOLLEXCLUSIVE, then --reuse-port).  --callgrind N: instructions
per request of an ev worker under valgrind (deterministic, unlike CPU time
on a shared machine).

Needs wrk and gunicorn (apt-get install wrk gunicorn nginx-light
valgrind) and taskset.
Everything runs on 127.0.0.1 and each load run is bounded by --duration.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


def status_kb(pids, key):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_listening(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close"
                          b"\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not answer on port %d" % port)


def parse_wrk(out):
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = None
    if m:
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[
            m.group(2)]
    errors = re.search(r"Socket errors:.*", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, rps, p99, (errors.group(0) if errors else ""), (
        int(non2xx.group(1)) if non2xx else 0)


def run_one(name, argv, args, env=None, keepalive=False, path="/",
            connections=None, script=None, setup=None):
    """Start a server (argv, {port} filled in) pinned to the server CPU,
    load it with wrk pinned to the client CPU, stop it.  setup(port) may
    return (argv, cleanup) for servers that need files (nginx)."""
    port = free_port()
    cleanup = None
    if setup is not None:
        argv, cleanup = setup(port)
    argv = [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(["taskset", "-c", str(args.server_cpu)] + argv,
                            cwd=HERE, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_listening(port, proc)
        time.sleep(0.5)
        pids = tree(proc.pid)
        idle_kb = status_kb(pids, "VmRSS")
        url = "http://127.0.0.1:%d%s" % (port, path)
        wrk = ["taskset", "-c", str(args.client_cpu), "wrk", "-t1",
               "-c%d" % (connections or args.connections), "--latency"]
        if not keepalive:
            wrk += ["-H", "Connection: close"]
        if script:
            wrk += ["-s", os.path.join(HERE, script)]
        # a short warm-up, then the measured run
        subprocess.run(wrk + ["-d1s", url], stdout=subprocess.DEVNULL,
                       check=True)
        pids = tree(proc.pid)
        t0 = cpu_ticks(pids)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.monotonic()
        out = subprocess.run(wrk + ["-d%ds" % args.duration, url],
                             stdout=subprocess.PIPE, check=True,
                             universal_newlines=True).stdout
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # how busy wrk's CPU was: near 100 %, the client is the limit
        client = (ru1.ru_utime - ru0.ru_utime + ru1.ru_stime
                  - ru0.ru_stime) / (time.monotonic() - w0)
        pids = tree(proc.pid)
        t1 = cpu_ticks(pids)
        peak_kb = status_kb(pids, "VmHWM")
        requests, rps, p99, errors, non2xx = parse_wrk(out)
        cpu_s = (t1 - t0) / TICK
        m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
        mib_s = float(m.group(1)) * {"B": 1 / 1048576.0, "KB": 1 / 1024.0,
                                     "MB": 1.0, "GB": 1024.0}[m.group(2)] \
            if m else 0.0
        return {
            "name": name, "requests": requests, "rps": rps, "p99": p99,
            "idle_mb": idle_kb / 1024.0, "peak_mb": peak_kb / 1024.0,
            "cpu_s": cpu_s, "mib_s": mib_s, "out": out,
            "us_per_req": cpu_s * 1e6 / requests if requests else float("nan"),
            "errors": errors, "non2xx": non2xx, "client": client,
        }
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if cleanup:
            cleanup()


def nginx_setup(nginx):
    """nginx with bench/nginx.conf, its pid, logs and temp files in a
    temporary directory of its own."""
    def setup(port):
        tmp = tempfile.mkdtemp(prefix="nw-bench-nginx-")
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = f.read().replace("{port}", str(port)).replace("{tmp}",
                                                                  tmp)
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return ([nginx, "-p", tmp, "-c", path, "-e", tmp + "/error.log"],
                lambda: shutil.rmtree(tmp, ignore_errors=True))
    return setup


def table(runs, title):
    print(title)
    print("%-22s %10s %10s %9s %9s %9s %9s %12s %8s" % (
        "server", "requests", "req/s", "p99 ms", "MiB/s", "idle MB",
        "peak MB", "CPU us/req", "wrk CPU"))
    for r in runs:
        print("%-22s %10d %10.0f %9s %9.1f %9.1f %9.1f %12.2f %7.0f%%" % (
            r["name"], r["requests"], r["rps"],
            "%.2f" % r["p99"] if r["p99"] is not None else "-",
            r["mib_s"], r["idle_mb"], r["peak_mb"], r["us_per_req"],
            100.0 * r["client"]))
        if r["errors"] or r["non2xx"]:
            print("    %s non-2xx: %d" % (r["errors"], r["non2xx"]))


def has_module(python, name):
    return subprocess.run([python, "-c", "import " + name],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def keepalive_runs(args):
    """wrk -t1 -c50, keep-alive: narwhal ev against gunicorn's workers and
    nginx, then a 1 MiB body."""
    nw = os.path.abspath(args.narwhal)
    gunicorn = [args.gunicorn, "-w", "1", "-b", "127.0.0.1:{port}",
                "--log-level", "warning"]
    servers = [("narwhal ev", [nw, "-w", "1", "-k", "ev", "-b",
                               "127.0.0.1:{port}", "--log-level", "warning",
                               "hello:app"], None),
               ("narwhal gthread", [nw, "-w", "1", "-k", "gthread",
                                    "--threads", "4", "-b",
                                    "127.0.0.1:{port}", "--log-level",
                                    "warning", "hello:app"], None)]
    if has_module("/usr/bin/python3", "tornado"):
        servers.append(("narwhal tornado", [nw, "-w", "1", "-k", "tornado",
                                            "-b", "127.0.0.1:{port}",
                                            "--log-level", "warning",
                                            "hello:app"], None))
    if args.only != "narwhal":
        servers += [
            ("gunicorn sync", gunicorn + ["-k", "sync", "hello:app"], None),
            ("gunicorn gthread", gunicorn + ["-k", "gthread", "--threads",
                                             "4", "hello:app"], None),
        ]
        if has_module("/usr/bin/python3", "gevent"):
            servers.append(("gunicorn gevent", gunicorn
                            + ["-k", "gevent", "hello:app"], None))
        if has_module("/usr/bin/python3", "tornado"):
            servers.append(("gunicorn tornado", gunicorn
                            + ["-k", "tornado", "hello:app"], None))
        if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
            servers.append(("nginx return 200", None,
                            nginx_setup(shutil.which("nginx")
                                        or "/usr/sbin/nginx")))
    runs = []
    for name, argv, setup in servers:
        try:
            runs.append(run_one(name, argv, args, keepalive=True,
                                connections=50, setup=setup))
        except SystemExit as e:
            print("%s: skipped (%s)" % (name, e))
    table(runs, "hello world, keep-alive, wrk -t1 -c50, %d s per run, "
          "server on CPU %d, wrk on CPU %d"
          % (args.duration, args.server_cpu, args.client_cpu))
    byname = {r["name"]: r for r in runs}
    ev = byname["narwhal ev"]
    if "nginx return 200" in byname:
        print("CPU per request, narwhal ev / nginx: %.2f (goal <= 1.0)"
              % (ev["us_per_req"] / byname["nginx return 200"]["us_per_req"]))
        if args.rounds:
            alternate(args, servers[0], servers[-1])
    if "gunicorn tornado" in byname and "narwhal tornado" in byname:
        print("CPU per request, narwhal tornado-compat / gunicorn tornado: "
              "%.2f" % (byname["narwhal tornado"]["us_per_req"]
                        / byname["gunicorn tornado"]["us_per_req"]))
    if "gunicorn gthread" in byname:
        print("CPU per request, narwhal gthread / gunicorn gthread (both "
              "--threads 4): %.2f"
              % (byname["narwhal gthread"]["us_per_req"]
                 / byname["gunicorn gthread"]["us_per_req"]))
    print("idle RSS, master + one ev worker: %.1f MB (goal <= 16)"
          % ev["idle_mb"])

    big = [run_one(name, argv, args, keepalive=True, connections=50,
                   path="/1m", setup=setup)
           for name, argv, setup in servers
           if name in ("narwhal ev", "gunicorn gthread")]
    table(big, "1 MiB body, keep-alive, wrk -t1 -c50")
    if len(big) == 2 and big[1]["mib_s"] > 0:
        print("MiB/s, narwhal ev / gunicorn gthread: %.2f (goal >= 1.6)"
              % (big[0]["mib_s"] / big[1]["mib_s"]))
        # when wrk's CPU is the limit, MiB/s says more about wrk: the
        # servers' CPU per MiB is the comparison that holds
        print("server CPU per MiB, gunicorn gthread / narwhal ev: %.2f"
              % (big[1]["us_per_req"] / big[0]["us_per_req"]))


def alternate(args, ev, nginx):
    """ev and nginx in turn, args.rounds times: on a shared machine one
    run's CPU per request moves by 20 % or more from one run to the next,
    so the goal is judged on the median of pairs run back to back."""
    evs, ngs, ratios = [], [], []
    for i in range(args.rounds):
        a = run_one(ev[0], ev[1], args, keepalive=True, connections=50,
                    setup=ev[2])
        b = run_one(nginx[0], nginx[1], args, keepalive=True, connections=50,
                    setup=nginx[2])
        evs.append(a["us_per_req"])
        ngs.append(b["us_per_req"])
        ratios.append(evs[-1] / ngs[-1])
        print("  round %d: ev %.2f us, nginx %.2f us, %.3f"
              % (i + 1, evs[-1], ngs[-1], ratios[-1]))
    print("CPU per request over %d alternating rounds: ev median %.2f us, "
          "nginx median %.2f us; ratio median %.3f (%.3f to %.3f), ev <= "
          "nginx in %d of %d (goal <= 1.0)"
          % (args.rounds, statistics.median(evs), statistics.median(ngs),
             statistics.median(ratios), min(ratios), max(ratios),
             sum(1 for r in ratios if r <= 1.0), args.rounds))


def spread_runs(args):
    """How evenly 4 ev workers share the clients: per-worker responses."""
    nw = os.path.abspath(args.narwhal)
    for label, extra in (("EPOLLEXCLUSIVE", []),
                         ("--reuse-port", ["--reuse-port"])):
        for keepalive in (False, True):
            r = run_one("narwhal ev -w 4", [
                nw, "-w", "4", "-k", "ev", "-b", "127.0.0.1:{port}",
                "--log-level", "warning"] + extra + ["hello:app"], args,
                keepalive=keepalive, path="/pid", connections=50,
                script="spread.lua")
            counts = sorted((int(n) for n in re.findall(
                r"^worker \d+ (\d+)$", r["out"], re.M)), reverse=True)
            total = sum(counts) or 1
            print("%-15s %-11s %8.0f req/s  share per worker: %s" % (
                label, "keep-alive" if keepalive else "close", r["rps"],
                " ".join("%.1f%%" % (100.0 * c / total) for c in counts)))


def callgrind_run(args):
    """Instructions per request of one ev worker under callgrind: the
    counters are on only while args.callgrind keep-alive requests are
    served (after a warm-up), so start-up is not counted."""
    nw = os.path.abspath(args.narwhal)
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="nw-bench-cg-")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes",
         "--instr-atstart=no", "--callgrind-out-file=%s/cg.%%p" % tmp,
         nw, "-w", "1", "-k", "ev", "-b", "127.0.0.1:%d" % port,
         "--log-level", "warning", "hello:app"], cwd=HERE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_listening(port, proc, timeout=120)
        worker = tree(proc.pid)[-1]
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

        def serve(n):
            with socket.create_connection(("127.0.0.1", port)) as c:
                for _ in range(n):
                    c.sendall(req)
                    got = b""
                    while not got.endswith(b"Hello, World!\n"):
                        got += c.recv(65536)
        serve(200)
        subprocess.run(["callgrind_control", "-i", "on", str(worker)],
                       stdout=subprocess.DEVNULL, check=True)
        serve(args.callgrind)
        subprocess.run(["callgrind_control", "-i", "off", str(worker)],
                       stdout=subprocess.DEVNULL, check=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
    total = 0
    with open("%s/cg.%d" % (tmp, worker)) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                total = max(total, int(line.split()[1]))
    shutil.rmtree(tmp, ignore_errors=True)
    print("callgrind: %d instructions per keep-alive request "
          "(ev worker, %d requests, one connection)"
          % (total // args.callgrind, args.callgrind))


def main():
    top = os.path.dirname(HERE)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--narwhal", default=os.path.join(top, "build", "narwhal"))
    ap.add_argument("--gunicorn", default=shutil.which("gunicorn") or
                    "/usr/bin/gunicorn")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--only", choices=["narwhal", "gunicorn"])
    ap.add_argument("--keepalive", action="store_true",
                    help="ev vs gunicorn and nginx, keep-alive, -c50")
    ap.add_argument("--rounds", type=int, default=0, metavar="N",
                    help="with --keepalive: then N alternating ev/nginx "
                    "runs, judged on their median")
    ap.add_argument("--spread", action="store_true",
                    help="4 ev workers: each one's share of the requests")
    ap.add_argument("--callgrind", type=int, metavar="N",
                    help="instructions per request over N requests")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    if not 1 <= args.duration <= 120:
        raise SystemExit("--duration must be 1..120 seconds")
    if args.callgrind:
        return callgrind_run(args)
    if args.spread:
        return spread_runs(args)
    if args.keepalive:
        return keepalive_runs(args)

    runs = []
    if args.only in (None, "narwhal"):
        runs.append(run_one("narwhal sync", [
            os.path.abspath(args.narwhal), "-w", "1", "-k", "sync", "-b",
            "127.0.0.1:{port}", "--log-level", "warning", "hello:app"], args))
    if args.only in (None, "gunicorn"):
        runs.append(run_one("gunicorn sync", [
            args.gunicorn, "-w", "1", "-k", "sync", "-b", "127.0.0.1:{port}",
            "--log-level", "warning", "hello:app"], args))

    table(runs, "%d s per run, %d connections, Connection: close, server on "
          "CPU %d, wrk on CPU %d" % (args.duration, args.connections,
                                     args.server_cpu, args.client_cpu))
    if len(runs) == 2 and runs[1]["us_per_req"] > 0:
        ratio = runs[0]["us_per_req"] / runs[1]["us_per_req"]
        print("CPU per request, narwhal / gunicorn: %.3f (goal <= 0.25)"
              % ratio)


if __name__ == "__main__":
    sys.exit(main())
