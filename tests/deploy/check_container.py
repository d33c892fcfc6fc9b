#!/usr/bin/env python3
"""check_container.py SOURCE_DIR BUILD_DIR compose|build-stage: deploy/container checked without
Docker, which this machine does not have (docs/operations.md, "Container image and compose").

compose: the Containerfile and compose.yaml read and checked (two Debian 12 stages, a numeric
  non-root user, HEALTHCHECK on /readyz at the port strata listens on, the compose services
  redis and strata with health checks, AOF on, strata after a healthy Redis, environment names
  that docs/operations.md documents, secrets from env.example); then the compose file rehearsed
  on this machine: a real redis-server started with the compose file's own redis-server flags,
  the redis health check run as written (and failing once Redis is stopped), this build's
  strata serve started with the compose file's environment (service names and ports mapped to
  loopback ports), the image's health check command answering, Redis in use (/cache/health
  healthy, a value written through strata is a key in Redis, appendonly on), SIGTERM exits 0.
build-stage: the Containerfile's build stage rehearsed: the files its COPY lines name copied into
  an empty context, its RUN lines run there (apt-get aside: its packages must be the ones
  scripts/deps.sh installs), and the package the runtime stage copies must come out.
Exits 0, or 1 with what failed."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploytest import (Failure, Procs, check, free_port, health, http, poll,  # noqa: E402
                        start_redis, strata_variables, tmpdir)


def read_containerfile(path):
    """[(stage name, [(INSTRUCTION, args)])], continuation lines joined, comments dropped."""
    lines, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    stages = []
    for line in lines:
        word, _, args = line.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args.strip(), re.I)
            check(m, "FROM %s: expected IMAGE [AS NAME]" % args)
            stages.append((m.group(2), m.group(1), []))
        else:
            check(stages, "%s before the first FROM" % word)
            stages[-1][2].append((word, " ".join(args.split())))
    return stages


def exec_form(args):
    """A JSON exec form (["curl", ...]) as a list."""
    v = json.loads(args)
    check(isinstance(v, list) and all(isinstance(x, str) for x in v), "not an exec form: " + args)
    return v


def deps_packages(source):
    with open(os.path.join(source, "scripts", "deps.sh")) as f:
        text = f.read()
    return {p for m in re.findall(r"pkgs\+?=\((.*?)\)", text, re.S) for p in m.split()}


def check_containerfile(source):
    """The image's facts the compose rehearsal relies on: its listen port, health check, user."""
    stages = read_containerfile(os.path.join(source, "deploy", "container", "Containerfile"))
    check(len(stages) >= 2, "not multi-stage: %d FROM" % len(stages))
    for name, image, _ in stages:
        check(re.match(r"debian:bookworm(-slim)?$", image), "FROM %s: expected Debian 12 "
              "(debian:bookworm or debian:bookworm-slim)" % image)
    build = [s for s in stages if s[0] == "build"]
    check(build, "no stage named build")
    final = stages[-1][2]
    check(any(w == "COPY" and a.startswith("--from=build ") for w, a in final),
          "the runtime stage copies nothing from the build stage")
    users = [a for w, a in final if w == "USER"]
    check(users, "the runtime stage sets no USER: it would run as root")
    uid = users[-1].split(":")[0]
    check(uid.isdigit() and int(uid) != 0,
          "USER %s: expected a numeric non-root uid (Kubernetes' runAsNonRoot checks numbers)" %
          users[-1])
    env = {}
    for w, a in final:
        if w == "ENV":
            k, _, v = a.partition("=")
            env[k] = v
    listen = env.get("STRATA_LISTEN", "")
    check(re.match(r"0\.0\.0\.0:\d+$", listen), "ENV STRATA_LISTEN=%s: expected 0.0.0.0:PORT" %
          listen)
    port = listen.rsplit(":", 1)[1]
    exposed = [a for w, a in final if w == "EXPOSE"]
    check(exposed == [port], "EXPOSE %s, strata listens on %s" % (exposed, port))
    hc = [a for w, a in final if w == "HEALTHCHECK"]
    check(len(hc) == 1, "expected one HEALTHCHECK, found %d" % len(hc))
    m = re.search(r"\bCMD\s+(\[.*\])$", hc[0])
    check(m, "HEALTHCHECK without an exec-form CMD: " + hc[0])
    probe = exec_form(m.group(1))
    check("http://127.0.0.1:%s/readyz" % port in probe, "HEALTHCHECK does not ask "
          "http://127.0.0.1:%s/readyz: %s" % (port, probe))
    # curl must be installed by the runtime stage (bookworm-slim has none)
    if probe[0] == "curl":
        check(any(w == "RUN" and re.search(r"apt-get install .*\bcurl\b", a) for w, a in final),
              "HEALTHCHECK runs curl, which the runtime stage does not install")
    entry = [exec_form(a) for w, a in final if w == "ENTRYPOINT"]
    cmd = [exec_form(a) for w, a in final if w == "CMD"]
    check(entry and entry[-1] == ["/usr/bin/strata"] and cmd and cmd[-1] == ["serve"],
          "expected ENTRYPOINT [\"/usr/bin/strata\"] CMD [\"serve\"]")
    stop = [a for w, a in final if w == "STOPSIGNAL"]
    check(stop in ([], ["SIGTERM"]), "STOPSIGNAL %s: strata drains on SIGTERM" % stop)
    return {"port": port, "probe": probe, "stages": stages}


def interpolate(value, env):
    """compose's ${VAR}, ${VAR:?message} and $$, from env (the env.example file)."""
    def sub(m):
        check(m.group(1) in env, "compose.yaml needs %s, which env.example does not set" %
              m.group(1))
        return env[m.group(1)]
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}", sub,
                  value).replace("$$", "$")


def read_env_example(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def check_compose(source, build):
    image = check_containerfile(source)
    here = os.path.join(source, "deploy", "container")
    with open(os.path.join(here, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    dotenv = read_env_example(os.path.join(here, "env.example"))
    services = compose.get("services") or {}
    check(set(services) == {"redis", "strata"}, "services: %s, expected redis and strata" %
          sorted(services))
    redis, strata = services["redis"], services["strata"]
    for name, svc in services.items():
        hc = svc.get("healthcheck") or {}
        check(isinstance(hc.get("test"), list) and hc["test"][0] in ("CMD", "CMD-SHELL"),
              "service %s has no health check" % name)

    # redis: AOF, a named volume at /data, its flags as a command line
    cmd = redis.get("command")
    check(isinstance(cmd, list) and cmd[:2] == ["sh", "-c"], "redis: expected command: sh -c ...")
    line = interpolate(cmd[2], dict(dotenv, **{"REDIS_PASSWORD": "$REDIS_PASSWORD"}))
    check(line.startswith("exec redis-server "), "redis: the command does not exec redis-server")
    redis_env = {k: interpolate(str(v), dotenv) for k, v in (redis.get("environment") or {}).items()}
    flags = shlex.split(line[len("exec redis-server "):].replace("$REDIS_PASSWORD",
                                                                  redis_env["REDIS_PASSWORD"]))
    check(flags[flags.index("--appendonly") + 1] == "yes" if "--appendonly" in flags else False,
          "redis: AOF is not on (--appendonly yes)")
    volumes = redis.get("volumes") or []
    check(any(str(v).endswith(":/data") and str(v).split(":")[0] in (compose.get("volumes") or {})
              for v in volumes), "redis: no named volume at /data")

    # strata: the image built from the Containerfile, after a healthy Redis
    b = strata.get("build") or {}
    dockerfile = os.path.normpath(os.path.join(here, b.get("context", "."), b.get("dockerfile",
                                                                                  "Dockerfile")))
    check(dockerfile == os.path.join(source, "deploy", "container", "Containerfile"),
          "strata: build does not name deploy/container/Containerfile (%s)" % dockerfile)
    dep = (strata.get("depends_on") or {}).get("redis") or {}
    check(dep.get("condition") == "service_healthy", "strata does not wait for a healthy redis")
    env = {k: interpolate(str(v), dotenv) for k, v in (strata.get("environment") or {}).items()}
    known = strata_variables(source)
    unknown = sorted(set(env) - known)
    check(not unknown, "strata: environment names docs/operations.md does not document: %s" %
          unknown)
    check(env.get("REDIS_PASSWORD") == redis_env.get("REDIS_PASSWORD"),
          "strata and redis are given different passwords")
    check(env.get("REDIS_HOST") == "redis", "strata: REDIS_HOST is not the redis service")
    listen = env.get("STRATA_LISTEN", "0.0.0.0:" + image["port"])
    check(listen.endswith(":" + image["port"]), "STRATA_LISTEN=%s, the image's health check "
          "asks port %s" % (listen, image["port"]))
    ports = [str(p) for p in strata.get("ports") or []]
    check(ports and all(p.endswith(":" + image["port"]) for p in ports),
          "strata: ports %s do not publish %s" % (ports, image["port"]))
    probe = strata["healthcheck"]["test"]
    check(probe[0] == "CMD" and probe[1:] == image["probe"],
          "strata's health check %s is not the image's %s" % (probe, image["probe"]))
    check(strata.get("read_only") is True and strata.get("cap_drop") == ["ALL"],
          "strata: expected read_only: true and cap_drop: [ALL]")

    # the rehearsal: the same processes on loopback ports
    work = tmpdir("compose")
    try:
        with Procs() as procs:
            rport, sport = free_port(), free_port()
            rp = start_redis(procs, work, rport, flags)
            hc = interpolate(redis["healthcheck"]["test"][1], dotenv).replace(
                "redis-cli ", "redis-cli -p %d " % rport, 1)
            renv = dict(os.environ, **redis_env)
            ok = subprocess.run(["sh", "-c", hc], env=renv, capture_output=True)
            check(ok.returncode == 0, "redis' health check fails on a running Redis: %s" % hc)
            senv = dict(env, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport),
                        STRATA_LISTEN="127.0.0.1:%d" % sport, PATH=os.environ["PATH"])
            slog = os.path.join(work, "strata.log")
            sp = procs.start([os.path.join(build, "strata"), "serve"], slog, env=senv)
            url = "http://127.0.0.1:%d" % sport
            poll("strata's /readyz", lambda: http(url + "/readyz")[0] == 200, proc=sp, log=slog)
            argv = [a.replace("127.0.0.1:%s/" % image["port"], "127.0.0.1:%d/" % sport)
                    for a in probe[1:]]
            r = subprocess.run(argv, capture_output=True, text=True)
            check(r.returncode == 0, "the image's health check fails: %s: %s" % (argv, r.stderr))
            tokens = dict(reversed(t.split(":")[:2]) for t in env["STRATA_TOKENS"].split(","))
            check("admin" in tokens and "write" in tokens,
                  "env.example's STRATA_TOKENS needs an admin and a write token")
            poll("/cache/health healthy with Redis",
                 lambda: health(url, tokens["admin"])[1].get("status") == "healthy" and
                 health(url, tokens["admin"])[1].get("redis_available") is True, proc=sp,
                 log=slog)
            status, _ = http(url + "/v1/cache/compose/greeting", token=tokens["write"],
                             method="PUT", body=b"hello")
            check(status in (200, 201, 204), "PUT through strata: %d" % status)
            cli = ["redis-cli", "-p", str(rport), "--no-auth-warning", "-a",
                   redis_env["REDIS_PASSWORD"]]
            keys = subprocess.run(cli + ["--scan", "--pattern", "*greeting*"],
                                  capture_output=True, text=True).stdout.split()
            check(keys, "the value written through strata is not in Redis")
            aof = subprocess.run(cli + ["config", "get", "appendonly"], capture_output=True,
                                 text=True).stdout.split()
            check(aof == ["appendonly", "yes"], "Redis' appendonly: %s" % aof)
            rc = procs.stop(sp)
            check(rc == 0, "strata exited with %d after SIGTERM" % rc)
            procs.stop(rp)
            down = subprocess.run(["sh", "-c", hc], env=renv, capture_output=True)
            check(down.returncode != 0, "redis' health check passes with Redis stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("check_container: Containerfile and compose.yaml checked; compose rehearsed with "
          "redis-server and strata serve on loopback ports")


def check_build_stage(source):
    image = check_containerfile(source)
    name, _, steps = [s for s in image["stages"] if s[0] == "build"][0]
    final = image["stages"][-1][2]
    ctx = tmpdir("container-build")
    try:
        workdir = "/"
        wanted = deps_packages(source)
        for word, args in steps:
            if word == "WORKDIR":
                workdir = args
            elif word == "COPY":
                parts = args.split()
                check(not parts[0].startswith("--"), "COPY %s in the build stage" % args)
                dest = parts[-1]
                for src in parts[:-1]:
                    s = os.path.join(source, src)
                    check(os.path.exists(s), "COPY %s: no such file in the repository" % src)
                    d = os.path.join(ctx, dest if dest != "./" else "", os.path.basename(src)
                                     if dest.endswith("/") else "")
                    d = os.path.normpath(d)
                    os.makedirs(os.path.dirname(d), exist_ok=True)
                    if os.path.isdir(s):
                        shutil.copytree(s, d, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        shutil.copy2(s, d)
            elif word == "RUN" and "apt-get install" in args:
                pkgs = re.search(r"--no-install-recommends\s+(.*?)(?:&&|$)", args).group(1).split()
                missing = [p for p in pkgs if p not in wanted]
                check(not missing, "the build stage installs %s, which scripts/deps.sh does "
                      "not: the image would be built with other packages than CI" % missing)
                libs = sorted(p for p in wanted if p.startswith("lib") and p.endswith("-dev")
                              and p != "libcmocka-dev")
                check(set(libs) <= set(pkgs), "the build stage lacks %s" %
                      sorted(set(libs) - set(pkgs)))
            elif word == "RUN":
                check(workdir == "/src", "RUN outside WORKDIR /src")
                r = subprocess.run(["sh", "-ec", args], cwd=ctx, capture_output=True, text=True)
                check(r.returncode == 0, "the build stage's RUN failed: %s\n%s" %
                      (args, (r.stdout + r.stderr)[-3000:]))
        copies = [a.split() for w, a in final if w == "COPY" and a.startswith("--from=build ")]
        src = copies[0][1]
        check(src.startswith("/src/"), "the runtime stage copies %s, outside /src" % src)
        out = os.path.join(ctx, src[len("/src/"):])
        debs = [f for f in os.listdir(out) if f.startswith("strata_") and f.endswith(".deb")]
        check(len(debs) == 1, "the build stage left %s in %s, expected one strata_*.deb" %
              (os.listdir(out), src))
        files = subprocess.run(["dpkg-deb", "-c", os.path.join(out, debs[0])],
                               capture_output=True, text=True, check=True).stdout
        check(" ./usr/bin/strata" in files, "the package has no /usr/bin/strata (ENTRYPOINT)")
        check(any(w == "RUN" and "/tmp/deb/strata_*.deb" in a for w, a in final),
              "the runtime stage does not install the package it copied")
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    print("check_container: the Containerfile's build stage, rehearsed in an empty context, "
          "made %s" % debs[0])


def main():
    source, build, mode = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    try:
        if mode == "compose":
            check_compose(source, build)
        elif mode == "build-stage":
            check_build_stage(source)
        else:
            raise Failure("unknown mode %s" % mode)
    except Failure as e:
        print("check_container: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
