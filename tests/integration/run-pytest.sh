#!/bin/sh
# make check: the integration suite, under the interpreter narwhal embeds
# (its pytest comes from Debian's python3-pytest).
set -e
: "${PYTHON:?PYTHON is set by make check}"
: "${NARWHAL_SRCDIR:?NARWHAL_SRCDIR is set by make check}"
exec "$PYTHON" -m pytest -p no:cacheprovider -q -rfE \
    "$NARWHAL_SRCDIR/tests/integration" ${NARWHAL_PYTEST_ARGS:-}
