"""Fixtures: a real redis-server and real `strata serve` processes on free ports, in temp dirs.

The strata binary is --strata-bin PATH, else $STRATA_BIN, else build/strata of this checkout
(ctest passes the build's). Every process is started in its own group and killed when the tests
end, and with the test run should it die (PR_SET_PDEATHSIG). The package is imported from this
source tree (test_install.py checks the pip-installed copy).
"""
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PKG_ROOT))
sys.path.insert(0, PKG_ROOT)

TOKENS = {
    "admin": "admin-token-1234",
    "writer": "writer-token-1234",
    "reader": "reader-token-1234",
    "acme": "acme-writer-token",  # write role, bound to tenant acme
}
TOKENS_ENV = ",".join([f"{TOKENS['admin']}:admin", f"{TOKENS['writer']}:write",
                       f"{TOKENS['reader']}:read", f"{TOKENS['acme']}:write:acme"])

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgrp()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(p: Optional[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _wait_listening(port: int, p: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"exited with {p.returncode}; log {log}:\n" + open(log).read()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not listening on {port}; log {log}")
            time.sleep(0.03)


class Redis:
    def __init__(self, tmp: str) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (scripts/deps.sh installs it)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        log = os.path.join(tmp, "redis.log")
        with open(log, "ab") as f:
            self.p = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", tmp],
                                      stdout=f, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent)
        _wait_listening(self.port, self.p, log)

    def stop(self) -> None:
        _stop(self.p)


class Server:
    """One `strata serve`: env holds its settings (STRATA_TOKENS, REDIS_URL, ...)."""

    n = 0

    def __init__(self, binary: str, tmp: str, env: Dict[str, str],
                 port: Optional[int] = None) -> None:
        self.binary, self.tmp, self.env = binary, tmp, env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.p: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        Server.n += 1
        self.log = os.path.join(self.tmp, f"serve-{Server.n}.log")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "STRATA_LISTEN": f"127.0.0.1:{self.port}", "STRATA_WORKERS": "2", **self.env}
        with open(self.log, "ab") as f:
            self.p = subprocess.Popen([self.binary, "serve"], env=env, cwd=self.tmp, stdout=f,
                                      stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        _wait_listening(self.port, self.p, self.log)

    def kill(self) -> None:
        _stop(self.p, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.p)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--strata-bin", default=None, help="the strata binary to test against")


@pytest.fixture(scope="session")
def strata_bin(request: pytest.FixtureRequest) -> str:
    path = (request.config.getoption("--strata-bin") or os.environ.get("STRATA_BIN")
            or os.path.join(REPO, "build", "strata"))
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        pytest.fail(f"no strata binary at {path}: build it (make build) or pass --strata-bin")
    return path


@pytest.fixture(scope="session")
def tmpdir_session() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="strata-pytest-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def redis(tmpdir_session: str) -> Iterator[Redis]:
    r = Redis(tmpdir_session)
    yield r
    r.stop()


@pytest.fixture
def make_server(strata_bin: str, tmpdir_session: str) -> Iterator:
    """make_server(**env): a server of its own for one test, stopped after it."""
    started: List[Server] = []

    def make(port: Optional[int] = None, **env: str) -> Server:
        s = Server(strata_bin, tmpdir_session, env, port)
        started.append(s)
        return s

    yield make
    for s in started:
        s.kill()


@pytest.fixture(scope="session")
def server(strata_bin: str, tmpdir_session: str, redis: Redis) -> Iterator[Server]:
    """Development mode (no tokens: every request is admin), with Redis."""
    s = Server(strata_bin, tmpdir_session, {"REDIS_URL": redis.url})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def server2(strata_bin: str, tmpdir_session: str, redis: Redis, server: Server) -> Iterator[Server]:
    """A second instance sharing the first one's Redis."""
    s = Server(strata_bin, tmpdir_session, {"REDIS_URL": redis.url})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def auth_server(strata_bin: str, tmpdir_session: str, redis: Redis) -> Iterator[Server]:
    """With tokens (TOKENS above): admin, writer, reader, and a writer bound to tenant acme."""
    s = Server(strata_bin, tmpdir_session, {"REDIS_URL": redis.url, "STRATA_TOKENS": TOKENS_ENV})
    yield s
    s.stop()


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A namespace of the test's own, so tests sharing a server do not see each other's keys."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", request.node.name)
    return ("t-" + name)[:64]
