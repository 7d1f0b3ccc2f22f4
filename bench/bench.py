#!/usr/bin/env python3
"""narwhal against Debian's gunicorn on the same hello-world app.

Not a test: it only prints.  One worker each, the server pinned to one CPU
and wrk to another, Connection: close (the sync worker closes after every
request, as Gunicorn's does).  For each server it prints requests/s, p99
latency, idle and peak RSS of the process tree, and CPU time per request
(utime + stime of the server's process tree / requests served).

    bench/bench.py [--narwhal build/narwhal] [--duration 10] [--connections 8]

Needs wrk and gunicorn (apt-get install wrk gunicorn) and taskset.
Everything runs on 127.0.0.1 and each load run is bounded by --duration.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


def run_one(name, argv, args, env=None):
    port = free_port()
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
        url = "http://127.0.0.1:%d/" % port
        wrk = ["taskset", "-c", str(args.client_cpu), "wrk", "-t1",
               "-c%d" % args.connections, "--latency", "-H",
               "Connection: close"]
        # a short warm-up, then the measured run
        subprocess.run(wrk + ["-d1s", url], stdout=subprocess.DEVNULL,
                       check=True)
        pids = tree(proc.pid)
        t0 = cpu_ticks(pids)
        out = subprocess.run(wrk + ["-d%ds" % args.duration, url],
                             stdout=subprocess.PIPE, check=True,
                             universal_newlines=True).stdout
        pids = tree(proc.pid)
        t1 = cpu_ticks(pids)
        peak_kb = status_kb(pids, "VmHWM")
        requests, rps, p99, errors, non2xx = parse_wrk(out)
        cpu_s = (t1 - t0) / TICK
        return {
            "name": name, "requests": requests, "rps": rps, "p99": p99,
            "idle_mb": idle_kb / 1024.0, "peak_mb": peak_kb / 1024.0,
            "cpu_s": cpu_s,
            "us_per_req": cpu_s * 1e6 / requests if requests else float("nan"),
            "errors": errors, "non2xx": non2xx,
        }
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    if not 1 <= args.duration <= 120:
        raise SystemExit("--duration must be 1..120 seconds")

    runs = []
    if args.only in (None, "narwhal"):
        runs.append(run_one("narwhal sync", [
            os.path.abspath(args.narwhal), "-w", "1", "-k", "sync", "-b",
            "127.0.0.1:{port}", "--log-level", "warning", "hello:app"], args))
    if args.only in (None, "gunicorn"):
        runs.append(run_one("gunicorn sync", [
            args.gunicorn, "-w", "1", "-k", "sync", "-b", "127.0.0.1:{port}",
            "--log-level", "warning", "hello:app"], args))

    print("%d s per run, %d connections, Connection: close, server on CPU %d,"
          " wrk on CPU %d" % (args.duration, args.connections,
                              args.server_cpu, args.client_cpu))
    print("%-15s %10s %10s %9s %9s %9s %12s" % (
        "server", "requests", "req/s", "p99 ms", "idle MB", "peak MB",
        "CPU us/req"))
    for r in runs:
        print("%-15s %10d %10.0f %9s %9.1f %9.1f %12.1f" % (
            r["name"], r["requests"], r["rps"],
            "%.2f" % r["p99"] if r["p99"] is not None else "-",
            r["idle_mb"], r["peak_mb"], r["us_per_req"]))
        if r["errors"] or r["non2xx"]:
            print("    %s non-2xx: %d" % (r["errors"], r["non2xx"]))
    if len(runs) == 2 and runs[1]["us_per_req"] > 0:
        ratio = runs[0]["us_per_req"] / runs[1]["us_per_req"]
        print("CPU per request, narwhal / gunicorn: %.3f (goal <= 0.25)"
              % ratio)


if __name__ == "__main__":
    sys.exit(main())
