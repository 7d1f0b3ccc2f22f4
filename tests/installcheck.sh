#!/bin/sh
# make installcheck: the installed narwhal serves with its installed sync
# plugin (it is not in the build tree), and a third-party plugin builds from
# the installed headers and narwhal.pc alone, then serves.
set -eu
bin=$1 pcdir=$2 prefix=$3 srcdir=$4 python=$5
tmp=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

serve_and_check() {
    # $1: a name for messages; the rest: narwhal's arguments
    what=$1
    shift
    "$bin" -b 127.0.0.1:0 --chdir "$srcdir/examples" "$@" hello:application \
        >"$tmp/log" 2>&1 &
    pid=$!
    "$python" - "$tmp/log" <<'PY'
import re, sys, time, urllib.request
log = sys.argv[1]
deadline = time.time() + 20
while time.time() < deadline:
    m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", open(log).read())
    if m:
        break
    time.sleep(0.05)
else:
    sys.exit("narwhal did not start:\n" + open(log).read())
while time.time() < deadline:
    try:
        body = urllib.request.urlopen(m.group(1) + "/", timeout=5).read()
        break
    except OSError:
        time.sleep(0.05)
assert body == b"Hello, World!\n", body
PY
    kill -TERM "$pid"
    wait "$pid"
    pid=""
    echo "installcheck: $what OK"
}

case "$(readlink -f "$bin")" in
"$(readlink -f "$prefix")"/*) ;;
*) echo "installcheck: $bin is not under $prefix" >&2; exit 1 ;;
esac
serve_and_check "installed sync plugin" -k sync
grep -q "Using worker: sync" "$tmp/log"

PKG_CONFIG_PATH="$pcdir" make -s -f "$srcdir/tests/sdk/Makefile" \
    SRC="$srcdir/tests/sdk" OUT="$tmp"
serve_and_check "out-of-tree plugin" -k "$tmp/third_party.so"
grep -q "third-party worker 1 ready" "$tmp/log"
