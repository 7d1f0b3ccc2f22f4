"""configure names the Debian package (or the fix) for a missing
dependency, in one line."""
import os
import subprocess

import pytest

from helpers import SRCDIR

CONFIGURE = os.path.join(SRCDIR, "configure")


def configure(tmp_path, *args):
    p = subprocess.run([CONFIGURE] + list(args), cwd=str(tmp_path),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    errors = [l for l in p.stdout.decode().splitlines()
              if l.startswith("configure: error:")]
    return p.returncode, errors


# configure runs from a scratch directory, which autoconf refuses when the
# source tree itself is configured (an in-tree build)
pytestmark = pytest.mark.skipif(
    not os.path.exists(CONFIGURE)
    or os.path.exists(os.path.join(SRCDIR, "config.status")),
    reason="no configure script, or the source tree is configured in place")


def test_missing_llhttp_dir(tmp_path):
    code, errors = configure(tmp_path, "PYTHON=/usr/bin/python3",
                             "--with-llhttp=/nonexistent")
    assert code != 0
    assert len(errors) == 1
    assert "--with-llhttp=/nonexistent" in errors[0]
    assert "llhttp.h" in errors[0]


def test_missing_python(tmp_path):
    code, errors = configure(tmp_path, "PYTHON=/nonexistent/python3")
    assert code != 0
    assert len(errors) == 1
    assert "apt-get install python3-dev" in errors[0]
