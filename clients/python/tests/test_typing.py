"""The package is fully typed: mypy --strict (Debian's mypy, scripts/deps.sh) for Python 3.9."""
import os
import subprocess
import sys

import pytest

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_strict(tmp_path):
    if subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode:
        pytest.skip(f"no mypy for {sys.executable}: install mypy (scripts/deps.sh does)")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--python-version", "3.9",
                        "--cache-dir", str(tmp_path), "strata"], cwd=PKG_ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
