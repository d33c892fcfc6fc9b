#!/usr/bin/env python3
"""check_run_hint.py SOURCE_DIR BUILD_DIR: the commands `make run` suggests work as printed.

`make run` prints two curl commands to try on the server it starts. They are read from
`make -n run` (nothing is built or run by make), run as printed against this build's
`strata serve` on a free port, and the value must come back as the text it was sent as: the PUT
once had no Content-Type, so curl's --data-binary stored it as a form
(application/x-www-form-urlencoded; hardening item 18). Exits 0, or 1 saying what differed."""
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hints(source, build, env):
    """The curl commands `make run` would print, as the shell prints them."""
    out = subprocess.run(["make", "-n", "-s", "-C", source, "run", "BUILD=" + build],
                         env=env, capture_output=True, text=True, check=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("echo") and "curl" in l]
    return [subprocess.run(["sh", "-c", l], env=env, capture_output=True, text=True,
                           check=True).stdout.strip() for l in lines]


def start(build, env):
    proc = subprocess.Popen([os.path.join(build, "strata"), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://%s/livez" % env["STRATA_LISTEN"]
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("strata serve did not start")


def main():
    source, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    env = dict(os.environ, STRATA_LISTEN="127.0.0.1:%d" % free_port())
    env.pop("MAKEFLAGS", None)
    env.pop("REDIS_URL", None)
    put, get = hints(source, build, env)
    proc = start(build, env)
    try:
        subprocess.run(["sh", "-c", put], env=env, capture_output=True, check=True)
        answer = subprocess.run(["sh", "-c", get], env=env, capture_output=True, text=True,
                                check=True).stdout
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    head = answer.replace("\r", "").lower()
    if "content-type: text/plain" not in head or not answer.endswith("hello"):
        print("make run's hint: %s\nthen: %s\nanswered:\n%s" % (put, get, answer))
        print("expected the value back as text/plain")
        return 1
    print("make run's hint stores text/plain and reads it back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
