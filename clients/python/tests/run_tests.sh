#!/bin/sh
# run_tests.sh PYTHON STRATA: the ctest python/client. Runs the client's pytest suite with
# PYTHON (Debian's /usr/bin/python3: apt installs pytest for it, while another python3 may come
# first on PATH) against the strata binary STRATA. Without python3-pytest or
# python3-pytest-asyncio it says so and exits 77, which ctest reports as skipped, not passed.
python=$1
strata=$2
if ! "$python" -c 'import pytest, pytest_asyncio' 2>/dev/null; then
    echo "python/client skipped: $python lacks pytest or pytest-asyncio;" \
         "run scripts/deps.sh (apt-get install python3-pytest python3-pytest-asyncio)"
    exit 77
fi
cd "$(dirname "$0")/.." || exit 1
PYTHONDONTWRITEBYTECODE=1 exec "$python" -m pytest -q -p no:cacheprovider tests --strata-bin "$strata"
