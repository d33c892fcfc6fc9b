"""deploytest.py: what tests/deploy's Python checks share: free ports, processes started and
always stopped, HTTP polled with a deadline, and the list of environment variables strata reads
(from docs/operations.md, so a deployment file naming a variable strata does not know fails)."""
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


class Failure(Exception):
    """A check that did not hold; the message says which and why."""


def check(cond, message):
    if not cond:
        raise Failure(message)


def free_port():
    """A port the kernel gave and released: nothing else of ours listens there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tmpdir(name):
    return tempfile.mkdtemp(prefix="strata-%s." % name, dir=os.environ.get("TMPDIR", "/tmp"))


def http(url, token=None, method="GET", body=None, timeout=5):
    """(status, body text) of one request; a refused connection raises OSError."""
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "text/plain")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def poll(what, fn, deadline_s=10.0, proc=None, log=None):
    """fn() until it returns a true value, or Failure after deadline_s (or when proc exits)."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise Failure("%s: the process exited with %s%s" % (what, proc.returncode, tail(log)))
        try:
            got = fn()
            if got:
                return got
            last = got
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise Failure("%s: not within %.0f s (last: %r)%s" % (what, deadline_s, last, tail(log)))


def tail(log):
    if not log or not os.path.exists(log):
        return ""
    with open(log, errors="replace") as f:
        return "\n--- %s:\n%s" % (log, "".join(f.readlines()[-30:]))


class Procs:
    """Processes started by a check, each stopped (TERM, then KILL) when the check ends."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, env=None):
        f = open(log, "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p, timeout=15):
        """TERM and wait; the exit code."""
        if p.poll() is None:
            p.terminate()
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("%s did not stop within %d s of SIGTERM" % (p.args[0], timeout))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def strata_variables(source):
    """Every environment variable docs/operations.md names (`STRATA_...`, `REDIS_...`, ...)."""
    with open(os.path.join(source, "docs", "operations.md")) as f:
        text = f.read()
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", text))


def start_redis(procs, work, port, extra):
    """A redis-server on 127.0.0.1:port in work, with the deployment's own flags (extra)."""
    log = os.path.join(work, "redis.log")
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
            "--save", ""] + extra
    p = procs.start(argv, log)
    cli = ["redis-cli", "-p", str(port)]
    poll("redis-server on %d" % port,
         lambda: subprocess.run(cli + ["--no-auth-warning", "-a", _password(extra), "ping"]
                                if _password(extra) else cli + ["ping"],
                                capture_output=True, text=True).stdout.strip() == "PONG",
         proc=p, log=log)
    return p


def _password(extra):
    return extra[extra.index("--requirepass") + 1] if "--requirepass" in extra else None


def health(url, token):
    """/cache/health's details as a dict, with a read token."""
    status, body = http(url + "/cache/health", token=token)
    return status, json.loads(body)
