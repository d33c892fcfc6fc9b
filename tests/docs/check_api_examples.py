#!/usr/bin/env python3
"""check_api_examples.py STRATA [DOC]: runs every example of docs/api.md against a live server.

STRATA is the strata binary, or the build directory holding it. The script starts a real
redis-server and `strata serve` on free ports in a temp dir, runs the document's example commands
in order in one bash session (so a variable set by one example is there for the next, as in a
terminal), and compares what each prints with what the document shows below it. The conventions
are written for authors in docs/api.md, "How the examples are checked"; in short:

  - in a fenced block, a line starting with "$ " is a command (a trailing backslash continues
    it); the lines after it, up to the next command or the end of the block, are its output;
  - "..." in an output line stands for any text within that line; a line that is only "..."
    stands for any number of lines; everything else must match exactly (after removing CRs,
    trailing spaces, trailing blank lines, and the Date header lines of curl -i);
  - the document's ports, 8080 (strata), 6379 (Redis) and 8090 (the test origin), are replaced by
    the real ones in commands and directives, and back in outputs;
  - HTML comments outside the fences are directives, read in order:
      <!-- server: [NAME=VALUE ...] [ARGS ...] -->  a new strata serve with exactly these
          settings and arguments, on an emptied Redis made primary again; the examples that
          follow run against it
      <!-- run: COMMAND -->    a setup step the reader does not need to see; it must succeed
      <!-- wait: COMMAND -->   repeated until it succeeds (at most 30 s)
      <!-- redis: stop -->, <!-- redis: start -->   Redis goes away; comes back (empty)
      <!-- origin: start -->   the test origin (build/strata_test_origin, whose paths include a
          fake OpenAI-compatible API, tests/origin/fake_openai.h) on port 8090, restarted
          (its counters back to 0) if it runs
      <!-- not checked: REASON -->   the next fenced block is not run (a reason is required)
  - a fenced block with curl in a line before any "$ " command (an example written without its
    prompt) is an error unless marked "not checked": every curl example is run.

Exits 0 when every example printed what the document shows; otherwise prints each difference
(the line in the document, the command, a diff) and exits 1. Every process it started is killed
when it exits, however it exits (PR_SET_PDEATHSIG covers a SIGKILL from ctest's timeout)."""
import ctypes
import difflib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DOC_PORT, DOC_REDIS_PORT, DOC_ORIGIN_PORT = 8080, 6379, 8090
COMMAND_TIMEOUT_S = 60
WAIT_TIMEOUT_S = 30
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRECTIVE = re.compile(r"^\s*<!--\s*(server|run|wait|redis|origin|not checked):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


class DocError(Exception):
    pass


# ---- reading the document ----------------------------------------------------------------

def parse(path):
    """The document as a list of steps, in order: (kind, lineno, ...)."""
    steps, lines = [], open(path, encoding="utf-8").read().split("\n")
    skip_next = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = DIRECTIVE.match(line)
        if m:
            kind, arg = m.group(1), m.group(2)
            if kind == "not checked":
                if not arg:
                    raise DocError(f"line {i + 1}: 'not checked' needs a reason")
                skip_next = i + 1
            elif kind == "origin" and arg != "start":
                raise DocError(f"line {i + 1}: origin: expects start, not {arg!r}")
            elif kind == "redis" and arg not in ("stop", "start"):
                raise DocError(f"line {i + 1}: redis: expects stop or start, not {arg!r}")
            elif not arg and kind != "server":
                raise DocError(f"line {i + 1}: {kind}: needs a command")
            else:
                steps.append((kind, i + 1, arg))
            i += 1
            continue
        if not FENCE.match(line):
            i += 1
            continue
        fence, start = FENCE.match(line).group(1), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if skip_next is not None:
            skip_next = None
            continue
        steps.extend(examples(body, start + 2))
    return steps


def examples(body, first_lineno):
    """The commands of one fenced block with the output each is expected to print."""
    out, cur = [], None
    k = 0
    while k < len(body):
        line, lineno = body[k], first_lineno + k
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\") and k + 1 < len(body):
                k += 1
                cmd = cmd + "\n" + body[k]  # bash reads the backslash-newline as a space
            cur = ["example", lineno, cmd, []]
            out.append(cur)
        elif cur is not None:
            cur[3].append(line)
        elif re.search(r"\bcurl\b", line):
            raise DocError(f"line {lineno}: a curl line that is not a command ('$ ...'): mark "
                           f"the block <!-- not checked: why --> or make it an example")
        k += 1
    return [tuple(e) for e in out]


# ---- comparing ---------------------------------------------------------------------------

def normalize(lines, drop_date):
    lines = [ln.replace("\r", "").rstrip() for ln in lines]
    if drop_date:
        lines = [ln for ln in lines if not ln.startswith("Date: ")]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def line_matches(pattern, text):
    if "..." not in pattern:
        return pattern == text
    rx = ".*".join(re.escape(p) for p in pattern.split("..."))
    return re.fullmatch(rx, text, re.S) is not None


def matches(expected, actual):
    """expected may hold "..." within lines, and lines that are only "..." (any lines)."""
    memo = {}

    def go(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i] == "...":
            r = go(i + 1, j) or (j < len(actual) and go(i, j + 1))
        else:
            r = j < len(actual) and line_matches(expected[i], actual[j]) and go(i + 1, j + 1)
        memo[(i, j)] = r
        return r

    sys.setrecursionlimit(max(1000, 4 * (len(expected) + len(actual)) + 100))
    return go(0, 0)


# ---- the processes -----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """In the child: killed when this script dies, whatever kills it (PR_SET_PDEATHSIG)."""
    _libc.prctl(1, signal.SIGKILL)
    os.setpgrp()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(p, sig=signal.SIGTERM, wait_s=5):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        return
    try:
        p.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


class Redis:
    def __init__(self, tmp):
        self.tmp, self.port, self.p = tmp, free_port(), None
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            raise DocError("redis-server is not installed (scripts/deps.sh installs it)")

    def start(self):
        if self.p is not None and self.p.poll() is None:
            return
        log = open(os.path.join(self.tmp, "redis.log"), "ab")
        self.p = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.tmp],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.command("PING") == "+PONG":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise DocError("redis-server did not start; see " + log.name)
            time.sleep(0.05)

    def stop(self):
        stop_process(self.p)
        self.p = None

    def command(self, *args):
        """One command; the first line of the reply (enough for PING, FLUSHALL, REPLICAOF)."""
        msg = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(msg.encode())
            return s.makefile("rb").readline().decode().rstrip("\r\n")

    def reset(self):
        """Running, primary and empty: the state every <!-- server: --> starts from."""
        self.start()
        for cmd in (("REPLICAOF", "NO", "ONE"), ("FLUSHALL",)):
            reply = self.command(*cmd)
            if not reply.startswith("+"):
                raise DocError(f"redis {' '.join(cmd)}: {reply}")


class Server:
    def __init__(self, binary, tmp):
        self.binary, self.tmp, self.p, self.port, self.n = binary, tmp, None, None, 0
        self.log = None

    def start(self, words, lineno):
        self.stop()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        args = []
        for w in words:
            if not args and re.match(r"^[A-Z_][A-Z0-9_]*=", w):
                name, value = w.split("=", 1)
                env[name] = value
            else:
                args.append(w)
        self.port = self.port or free_port()
        env["STRATA_LISTEN"] = f"127.0.0.1:{self.port}"
        self.n += 1
        self.log = os.path.join(self.tmp, f"serve-{self.n}.log")
        with open(self.log, "ab") as log:
            self.p = subprocess.Popen([self.binary, "serve", *args], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=self.tmp,
                                      preexec_fn=die_with_parent)
        deadline = time.monotonic() + 15
        while True:
            if self.p.poll() is not None:
                raise DocError(f"line {lineno}: strata serve exited with {self.p.returncode}:\n"
                               + self.log_tail())
            # Listening is enough (what connects waits in the backlog until a worker runs), and
            # a bare connection sends no request: the server's counters start at zero.
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DocError(f"line {lineno}: strata serve is not listening:\n"
                               + self.log_tail())
            time.sleep(0.05)

    def stop(self):
        stop_process(self.p, wait_s=15)
        self.p = None

    def log_tail(self, n=20):
        if self.log is None or not os.path.exists(self.log):
            return "(no server log)"
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])


class Shell:
    """One bash session for the whole document: variables and the directory carry over."""

    def __init__(self, tmp, path):
        self.tmp, self.n, self.p = tmp, 0, None
        self.env = {k: v for k, v in os.environ.items()
                    if not k.lower().endswith("_proxy") and not k.startswith(("STRATA_", "REDIS_"))}
        self.env["PATH"] = path
        self.env["LC_ALL"] = "C.UTF-8"

    def _start(self):
        self.p = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  cwd=self.tmp, env=self.env, text=True,
                                  preexec_fn=die_with_parent)

    def run(self, cmd, timeout):
        """(exit status, output: stdout and stderr as a terminal shows them); None on timeout."""
        if self.p is None or self.p.poll() is not None:
            self._start()
        self.n += 1
        base = os.path.join(self.tmp, f".cmd{self.n}")
        with open(base + ".sh", "w", encoding="utf-8") as f:
            f.write(cmd + "\n")
        self.p.stdin.write(f". {base}.sh >{base}.out 2>&1 </dev/null; "
                           f"echo $? >{base}.part; mv {base}.part {base}.rc\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout
        while not os.path.exists(base + ".rc"):
            if time.monotonic() > deadline or self.p.poll() is not None:
                self.close()  # a new session for what follows
                return None, read_text(base + ".out")
            time.sleep(0.01)
        return int(open(base + ".rc").read().strip() or 1), read_text(base + ".out")

    def close(self):
        stop_process(self.p, signal.SIGKILL)
        self.p = None


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# ---- running the document ----------------------------------------------------------------

class Run:
    def __init__(self, strata, doc):
        self.doc, self.failures, self.checked = doc, [], 0
        binary = os.path.abspath(os.path.join(strata, "strata") if os.path.isdir(strata) else strata)
        if not os.access(binary, os.X_OK):
            raise DocError(f"{binary} is not built (make build)")
        if shutil.which("curl") is None:
            raise DocError("curl is not installed (scripts/deps.sh installs it)")
        self.tmp = tempfile.mkdtemp(prefix="strata-docs-")
        self.redis = Redis(self.tmp)
        self.server = Server(binary, self.tmp)
        self.origin_bin = os.path.join(os.path.dirname(binary), "strata_test_origin")
        self.origin, self.origin_port = None, free_port()
        self.shell = Shell(self.tmp, os.path.dirname(binary) + os.pathsep
                           + os.environ.get("PATH", "/usr/bin:/bin"))

    def to_live(self, text):
        text = re.sub(rf"\b{DOC_PORT}\b", str(self.server.port or DOC_PORT), text)
        text = re.sub(rf"\b{DOC_ORIGIN_PORT}\b", str(self.origin_port), text)
        return re.sub(rf"\b{DOC_REDIS_PORT}\b", str(self.redis.port), text)

    def to_doc(self, text):
        if self.server.port:
            text = text.replace(f"127.0.0.1:{self.server.port}", f"127.0.0.1:{DOC_PORT}")
        text = text.replace(f"127.0.0.1:{self.origin_port}", f"127.0.0.1:{DOC_ORIGIN_PORT}")
        return text.replace(f"127.0.0.1:{self.redis.port}", f"127.0.0.1:{DOC_REDIS_PORT}")

    def fail(self, lineno, what, detail):
        self.failures.append(f"{self.doc}:{lineno}: {what}\n{detail}")

    def step(self, st):
        kind, lineno, arg = st[0], st[1], st[2]
        if kind == "server":
            self.redis.reset()
            # The new server's port first: the directive may name it (a proxy of itself).
            self.server.port = free_port()
            self.server.start(shlex.split(self.to_live(arg)), lineno)
        elif kind == "origin":
            self.start_origin(lineno)
        elif kind == "redis":
            self.redis.start() if arg == "start" else self.redis.stop()
        elif kind == "run":
            rc, out = self.shell.run(self.to_live(arg), COMMAND_TIMEOUT_S)
            if rc != 0:
                self.fail(lineno, f"setup failed (exit {rc}): {arg}", out)
        elif kind == "wait":
            self.need_server(lineno)
            deadline = time.monotonic() + WAIT_TIMEOUT_S
            while True:
                rc, out = self.shell.run(self.to_live(arg), WAIT_TIMEOUT_S)
                if rc == 0:
                    break
                if time.monotonic() > deadline:
                    self.fail(lineno, f"still failing after {WAIT_TIMEOUT_S} s: {arg}", out)
                    break
                time.sleep(0.1)
        else:
            self.need_server(lineno)
            self.example(lineno, arg, st[3])

    def start_origin(self, lineno):
        stop_process(self.origin)
        if not os.access(self.origin_bin, os.X_OK):
            raise DocError(f"line {lineno}: {self.origin_bin} is not built (make build)")
        log = open(os.path.join(self.tmp, "origin.log"), "ab")
        self.origin = subprocess.Popen([self.origin_bin, "--port", str(self.origin_port)],
                                       stdout=log, stderr=log, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.origin_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise DocError(f"line {lineno}: the test origin does not listen on {self.origin_port}")

    def need_server(self, lineno):
        if self.server.p is None:
            raise DocError(f"line {lineno}: an example before any <!-- server: ... -->")
        if self.server.p.poll() is not None:
            raise DocError(f"line {lineno}: strata serve died (exit {self.server.p.returncode}):"
                           f"\n" + self.server.log_tail())

    def example(self, lineno, cmd, expected_lines):
        self.checked += 1
        rc, out = self.shell.run(self.to_live(cmd), COMMAND_TIMEOUT_S)
        expected = normalize(expected_lines, False)
        actual = normalize(self.to_doc(out).split("\n"), True)
        if rc is None:
            self.fail(lineno, f"timed out after {COMMAND_TIMEOUT_S} s: $ {cmd}",
                      "\n".join(actual))
        elif not matches(expected, actual):
            diff = difflib.unified_diff(expected, actual, "docs (expected)", "server (actual)",
                                        lineterm="", n=2)
            self.fail(lineno, f"$ {cmd}", "\n".join(diff))

    def close(self):
        stop_process(self.origin)
        for x in (self.shell, self.server, self.redis):
            try:
                x.close() if x is self.shell else x.stop()
            except Exception:  # keep stopping the others
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv):
    if len(argv) < 2 or len(argv) > 3:
        print(__doc__.split("\n")[0], file=sys.stderr)
        return 2
    doc = argv[2] if len(argv) == 3 else os.path.join(ROOT, "docs", "api.md")
    started = time.monotonic()
    run = None
    # SIGTERM and SIGINT end the run through the finally below (processes stopped, temp removed).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    try:
        steps = parse(doc)
        run = Run(argv[1], os.path.relpath(doc))
        run.redis.start()
        for st in steps:
            run.step(st)
    except DocError as e:
        print(f"{os.path.relpath(doc)}: {e}", file=sys.stderr)
        if run is not None and run.failures:
            print("\n\n".join(run.failures), file=sys.stderr)
        return 1
    finally:
        if run is not None:
            run.close()
    took = time.monotonic() - started
    if run.failures:
        print("\n\n".join(run.failures), file=sys.stderr)
        print(f"\n{len(run.failures)} of {run.checked} examples of {run.doc} differ from what the "
              f"server printed ({took:.1f} s)", file=sys.stderr)
        return 1
    print(f"{run.checked} examples of {run.doc} checked against a live server ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
