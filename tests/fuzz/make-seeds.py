#!/usr/bin/env python3
"""Write the fuzzer's seed corpus from the integration corpus: one file per
case, its first byte choosing the fuzz configuration closest to the case's
flags (see fuzz_request.c)."""
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from test_corpus import load_corpus  # noqa: E402


def config_byte(args):
    if "--proxy-protocol" in args:
        return 2
    if "refuse" in args:
        return 3
    if any(a.startswith("--permit") or a.startswith("--strip")
           or a.startswith("--casefold") or a == "dangerous" for a in args):
        return 1
    return 0


def main():
    out = os.path.join(HERE, "seeds")
    os.makedirs(out, exist_ok=True)
    for case in load_corpus():
        data = bytes([config_byte(case["args"])]) + case["send"]
        name = hashlib.sha1(data).hexdigest()[:16]
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
