"""`pip install ./clients/python` with no index reachable, by Debian's pip (python3-pip) with
Debian's setuptools (python3-setuptools, python3-wheel): the package, its py.typed, and a call."""
import os
import shutil
import subprocess
import sys

import pytest

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pip_install_without_an_index(tmp_path, server):
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip(f"no pip for {sys.executable}: install python3-pip (scripts/deps.sh does)")
    # A copy: pip builds in the source tree, and the checkout must stay clean.
    src = tmp_path / "src"
    shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns("tests", "__pycache__",
                                                                 "build", "*.egg-info"))
    target = tmp_path / "site"
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/none"}
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index",
                        "--no-build-isolation", "--no-deps", "--target", str(target), str(src)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "strata" / "py.typed").exists()
    assert any(p.name.startswith("strata_cache-0.1.0") for p in target.iterdir())
    check = ("import strata, sys; c = strata.Strata(sys.argv[1], namespace='install'); "
             "c.set('k', {'ok': True}); print(c.get('k'), strata.__file__)")
    r = subprocess.run([sys.executable, "-c", check, server.url], capture_output=True, text=True,
                       env={**env, "PYTHONPATH": str(target)}, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("{'ok': True} " + str(target))
