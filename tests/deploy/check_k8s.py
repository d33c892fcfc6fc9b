#!/usr/bin/env python3
"""check_k8s.py SOURCE_DIR BUILD_DIR structure|schemas: deploy/k8s checked without a cluster
(docs/operations.md, "Kubernetes").

structure: every kustomization lists exactly the files of its folder; the base and the example
  overlay rendered (tests/deploy/k8s_render.py); the objects checked against each other and
  against strata (probes on /readyz and /livez at the container's port, a preStop drain shorter
  than the grace period, resources, a non-root read-only pod, Services and the
  PodDisruptionBudget selecting the pods, the Secret and ConfigMap keys the pods use, Redis
  with AOF and a volume claim at /data, environment names docs/operations.md documents, the HPA
  on the Deployment without replicas); then rehearsed on this machine: redis-server started with
  the StatefulSet's own flags and password, its readiness probe run as written (and failing once
  Redis is stopped), this build's strata serve with the Deployment's environment (Secret values,
  the ConfigMap's file, strata-redis mapped to that redis-server): the probes answer, the file
  is loaded, Redis is in use, SIGTERM exits 0. Broken copies (a file not listed, a probe
  removed) must be rejected.
schemas: every rendered object validated against the Kubernetes OpenAPI schemas with the npm
  package kubernetes-models (ajv), and type-checked with its TypeScript types (typescript's
  tsc: a field the API does not have, such as readinesProbe, is an error there, where the
  OpenAPI schemas allow unknown fields). Both are installed from the npm registry into
  BUILD_DIR/npm-k8s once; exit 77 (skipped) when that cannot be done. Broken copies (a port as a
  string, a misspelt field, a container without a name) must be rejected.
Exits 0, or 1 with what failed."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploytest import (Failure, Procs, check, free_port, health, http, poll,  # noqa: E402
                        start_redis, strata_variables, tmpdir)
from k8s_render import listed_exactly, render  # noqa: E402

NPM_PACKAGES = ["kubernetes-models@4", "typescript@5"]


def folders(k8s):
    """Every folder with a kustomization.yaml under deploy/k8s."""
    out = []
    for d, _, files in os.walk(k8s):
        if "kustomization.yaml" in files:
            out.append(d)
    return sorted(out)


def find(objs, kind, name=None):
    got = [o for o in objs if o["kind"] == kind and (name is None or
                                                     o["metadata"]["name"] == name)]
    check(len(got) == 1, "expected one %s%s, found %d" % (kind, " " + name if name else "",
                                                          len(got)))
    return got[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def env_of(container, objs):
    """The container's environment with Secret and ConfigMap references resolved."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        ref = e.get("valueFrom", {})
        if "secretKeyRef" in ref:
            s = find(objs, "Secret", ref["secretKeyRef"]["name"])
            data = s.get("stringData") or {}
            check(ref["secretKeyRef"]["key"] in data, "Secret %s has no key %s" %
                  (s["metadata"]["name"], ref["secretKeyRef"]["key"]))
            env[e["name"]] = data[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            c = find(objs, "ConfigMap", ref["configMapKeyRef"]["name"])
            env[e["name"]] = c["data"][ref["configMapKeyRef"]["key"]]
        else:
            raise Failure("env %s: a reference this check does not know" % e["name"])
    return env


def pod_checks(source, objs):
    """The base's objects against each other and against strata. Returns what the rehearsal
    needs."""
    dep = find(objs, "Deployment", "strata")
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    check(selects(dep["spec"]["selector"]["matchLabels"], labels),
          "the Deployment's selector does not select its pods")
    spec = pod["spec"]
    sc = spec.get("securityContext") or {}
    check(sc.get("runAsNonRoot") is True and int(sc.get("runAsUser", 0)) != 0,
          "strata's pod does not run as a non-root user")
    c = [c for c in spec["containers"] if c["name"] == "strata"]
    check(c, "no container strata")
    c = c[0]
    csc = c.get("securityContext") or {}
    check(csc.get("readOnlyRootFilesystem") is True and
          csc.get("allowPrivilegeEscalation") is False and
          (csc.get("capabilities") or {}).get("drop") == ["ALL"],
          "strata's container: expected a read-only root, no privilege escalation, no "
          "capabilities")
    res = c.get("resources") or {}
    for part in ("requests", "limits"):
        check({"cpu", "memory"} <= set(res.get(part) or {}) or
              (part == "limits" and "memory" in (res.get(part) or {})),
              "strata's container has no %s for cpu and memory" % part)
    env = env_of(c, objs)
    unknown = sorted(set(env) - strata_variables(source))
    check(not unknown, "environment names docs/operations.md does not document: %s" % unknown)
    listen = env.get("STRATA_LISTEN", "")
    check(re.match(r"0\.0\.0\.0:\d+$", listen), "STRATA_LISTEN=%s: expected 0.0.0.0:PORT" %
          listen)
    port = int(listen.rsplit(":", 1)[1])
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    check(port in ports.values(), "the container declares ports %s, strata listens on %d" %
          (ports, port))

    def probe_port(p):
        v = p["httpGet"]["port"]
        return ports.get(v) if isinstance(v, str) else v
    for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        p = c.get(kind)
        check(p and p.get("httpGet", {}).get("path") == path and probe_port(p) == port,
              "%s: expected GET %s on port %d" % (kind, path, port))
    # the preStop pause, then the drain (10 s fixed), must fit in the grace period
    pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
    check(pre and pre[0] == "sleep" and pre[1].isdigit(), "no preStop sleep: %s" % pre)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    check(int(pre[1]) + 10 < grace, "preStop %s s + the 10 s drain >= the grace period %d s" %
          (pre[1], grace))
    # the configuration file: the ConfigMap's key, at the path STRATA_CONFIG names
    conf = env.get("STRATA_CONFIG")
    check(conf, "STRATA_CONFIG is not set: the ConfigMap would not be loaded")
    mount = [m for m in c.get("volumeMounts", []) if conf.startswith(m["mountPath"] + "/")]
    check(mount, "STRATA_CONFIG=%s is under no volume mount" % conf)
    vol = [v for v in spec.get("volumes", []) if v["name"] == mount[0]["name"]]
    check(vol and "configMap" in vol[0], "the volume at %s is not a ConfigMap" %
          mount[0]["mountPath"])
    cm = find(objs, "ConfigMap", vol[0]["configMap"]["name"])
    key = conf[len(mount[0]["mountPath"]) + 1:]
    check(key in cm.get("data", {}), "ConfigMap %s has no key %s" % (cm["metadata"]["name"], key))
    # the Service and the PDB select the pods; the Service reaches the port
    svc = find(objs, "Service", "strata")
    check(selects(svc["spec"]["selector"], labels), "Service strata does not select the pods")
    for p in svc["spec"]["ports"]:
        t = p.get("targetPort", p["port"])
        check((ports.get(t) if isinstance(t, str) else t) == port,
              "Service strata's targetPort %s is not strata's port %d" % (t, port))
    pdb = find(objs, "PodDisruptionBudget")
    check(selects(pdb["spec"]["selector"]["matchLabels"], labels) and
          not selects(pdb["spec"]["selector"]["matchLabels"],
                      find(objs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]),
          "the PodDisruptionBudget does not select strata's pods alone")
    # Redis: the Service strata is told to use, a StatefulSet behind it with AOF and a volume
    rsvc = find(objs, "Service", env.get("REDIS_HOST"))
    sts = find(objs, "StatefulSet")
    check(sts["spec"]["serviceName"] == rsvc["metadata"]["name"],
          "the StatefulSet's serviceName is not the Service strata uses")
    rlabels = sts["spec"]["template"]["metadata"]["labels"]
    check(selects(rsvc["spec"]["selector"], rlabels), "Service %s does not select Redis" %
          rsvc["metadata"]["name"])
    check(str(rsvc["spec"]["ports"][0]["port"]) == env.get("REDIS_PORT", "6379"),
          "REDIS_PORT is not the Redis Service's port")
    rc = sts["spec"]["template"]["spec"]["containers"][0]
    cmd = rc.get("command") or []
    check(cmd[:2] == ["sh", "-c"] and cmd[2].startswith("exec redis-server "),
          "redis: expected command sh -c 'exec redis-server ...'")
    flags = cmd[2][len("exec redis-server "):].split()
    check("--appendonly" in flags and flags[flags.index("--appendonly") + 1] == "yes",
          "redis: AOF is not on")
    claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
    check(any(m["name"] in claims and m["mountPath"] == "/data"
              for m in rc.get("volumeMounts", [])), "redis: no volume claim mounted at /data")
    renv = env_of(rc, objs)
    check(renv.get("REDIS_PASSWORD") == env.get("REDIS_PASSWORD"),
          "strata and Redis read different passwords")
    return {"env": env, "config": cm["data"][key], "port": port, "redis_cmd": cmd[2],
            "redis_env": renv, "redis_probe": rc["readinessProbe"]["exec"]["command"],
            "deployment": dep}


def overlay_checks(objs):
    hpa = find(objs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    dep = find(objs, "Deployment", ref["name"])
    check(ref["kind"] == "Deployment" and ref["apiVersion"] == dep["apiVersion"],
          "the HPA does not scale the Deployment")
    check("replicas" not in dep["spec"], "with the HPA the Deployment must not set replicas")
    ns = find(objs, "Namespace")["metadata"]["name"]
    check(all(o["metadata"].get("namespace") == ns for o in objs if o["kind"] != "Namespace"),
          "the overlay leaves objects outside namespace %s" % ns)


def rehearse(build, facts):
    """The pods' processes on this machine: redis-server as the StatefulSet starts it, strata
    serve with the Deployment's environment."""
    work = tmpdir("k8s")
    try:
        with Procs() as procs:
            rport, sport = free_port(), free_port()
            flags = facts["redis_cmd"][len("exec redis-server "):].replace(
                '"$REDIS_PASSWORD"', facts["redis_env"]["REDIS_PASSWORD"]).split()
            rp = start_redis(procs, work, rport, flags)
            probe = facts["redis_probe"]
            check(probe[:2] == ["sh", "-c"], "redis' readiness probe: expected sh -c")
            line = probe[2].replace("redis-cli ", "redis-cli -p %d " % rport, 1)
            renv = dict(os.environ, **facts["redis_env"])
            check(subprocess.run(["sh", "-c", line], env=renv).returncode == 0,
                  "redis' readiness probe fails on a running Redis")
            conf = os.path.join(work, "strata.yaml")
            with open(conf, "w") as f:
                f.write(facts["config"])
            env = dict(facts["env"], STRATA_CONFIG=conf, REDIS_HOST="127.0.0.1",
                       REDIS_PORT=str(rport), STRATA_LISTEN="127.0.0.1:%d" % sport,
                       PATH=os.environ["PATH"])
            log = os.path.join(work, "strata.log")
            sp = procs.start([os.path.join(build, "strata")] +
                             facts["deployment"]["spec"]["template"]["spec"]["containers"][0]
                             .get("args", []), log, env=env)
            url = "http://127.0.0.1:%d" % sport
            poll("/readyz", lambda: http(url + "/readyz")[0] == 200, proc=sp, log=log)
            check(http(url + "/livez")[0] == 200, "/livez does not answer 200")
            with open(log) as f:
                check(re.search(r"proxy: \d+ routes?, \d+ origins?.*\(from STRATA_CONFIG\)",
                                f.read()), "the ConfigMap's file was not loaded")
            tokens = dict(reversed(t.split(":")[:2]) for t in env["STRATA_TOKENS"].split(","))
            check("admin" in tokens, "the Secret's STRATA_TOKENS has no admin token")
            poll("/cache/health healthy with Redis",
                 lambda: health(url, tokens["admin"])[1].get("status") == "healthy",
                 proc=sp, log=log)
            check(procs.stop(sp) == 0, "strata did not exit 0 after SIGTERM")
            procs.stop(rp)
            check(subprocess.run(["sh", "-c", line], env=renv,
                                 capture_output=True).returncode != 0,
                  "redis' readiness probe passes with Redis stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def structure(source, build):
    k8s = os.path.join(source, "deploy", "k8s")
    for d in folders(k8s):
        listed_exactly(d)
    base = render(os.path.join(k8s, "base"))
    kinds = sorted(o["kind"] for o in base)
    check(kinds == sorted(["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service",
                           "Service", "StatefulSet"]), "the base holds %s" % kinds)
    facts = pod_checks(source, base)
    overlay_checks(render(os.path.join(k8s, "overlays", "example")))
    rehearse(build, facts)

    # the checks can fail: a file the kustomization does not list, a probe removed
    work = tmpdir("k8s-broken")
    try:
        copy_dir = os.path.join(work, "k8s")
        shutil.copytree(k8s, copy_dir)
        with open(os.path.join(copy_dir, "base", "extra.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n")
        rejected(lambda: listed_exactly(os.path.join(copy_dir, "base")), "a file not listed")
        broken = copy.deepcopy(base)
        del find(broken, "Deployment")["spec"]["template"]["spec"]["containers"][0][
            "readinessProbe"]
        rejected(lambda: pod_checks(source, broken), "a Deployment without a readiness probe")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("check_k8s: %d folders listed exactly; base (%d objects) and overlays/example "
          "rendered and checked; rehearsed with redis-server and strata serve; broken copies "
          "rejected" % (len(folders(k8s)), len(base)))


def rejected(fn, what):
    try:
        fn()
    except Failure:
        return
    raise Failure("the check accepted %s" % what)


def npm_install(build):
    """BUILD/npm-k8s with the validators, or None with why."""
    prefix = os.path.join(build, "npm-k8s")
    have = all(os.path.exists(os.path.join(prefix, "node_modules", p, "package.json"))
               for p in ("kubernetes-models", "typescript"))
    if have:
        return prefix, None
    if not shutil.which("node") or not shutil.which("npm"):
        return None, "node or npm is not installed (scripts/deps.sh installs them)"
    os.makedirs(prefix, exist_ok=True)
    with open(os.path.join(prefix, "npm.log"), "w") as log:
        r = subprocess.run(["timeout", "300", "npm", "install", "--prefix", prefix, "--no-audit",
                            "--no-fund", "--loglevel=error"] + NPM_PACKAGES, stdout=log,
                           stderr=subprocess.STDOUT)
    if r.returncode != 0:
        return None, "npm install %s failed (no registry reachable?); see %s/npm.log" % (
            " ".join(NPM_PACKAGES), prefix)
    return prefix, None


def module_of(o):
    group, _, version = o["apiVersion"].rpartition("/")
    return "kubernetes-models/%s%s/%s" % (group + "/" if group else "", version, o["kind"])


def validate(prefix, work, objs, name, types=True):
    """[ajv's message or None per object] and tsc's output (None when it passed, or when types
    is false)."""
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump([{"module": module_of(o), "object": o} for o in objs], f)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_validate.cjs")
    r = subprocess.run(["node", script, path], env=dict(os.environ, NODE_PATH=os.path.join(
        prefix, "node_modules")), capture_output=True, text=True)
    check(r.returncode == 0, "k8s_validate.cjs failed: %s" % r.stderr)
    ajv = json.loads(r.stdout)
    if not types:
        return ajv, None
    ts = os.path.join(work, name + ".ts")
    with open(ts, "w") as f:
        for i, o in enumerate(objs):
            iface = "I" + o["kind"]
            f.write('import { %s as T%d } from "%s";\n' % (iface, i, module_of(o)))
        for i, o in enumerate(objs):
            f.write("export const o%d: T%d = %s;\n" % (i, i, json.dumps(o, indent=1)))
    tsc = os.path.join(prefix, "node_modules", "typescript", "bin", "tsc")
    r = subprocess.run(["node", tsc, "--noEmit", "--strict", "--skipLibCheck", "--module",
                        "commonjs", "--moduleResolution", "node10", "--target", "es2020",
                        "--baseUrl", os.path.join(prefix, "node_modules"), ts],
                       capture_output=True, text=True, cwd=work)
    return ajv, (None if r.returncode == 0 else r.stdout + r.stderr)


def schemas(source, build):
    prefix, why = npm_install(build)
    if prefix is None:
        print("check_k8s: skipped: %s" % why)
        return 77
    k8s = os.path.join(source, "deploy", "k8s")
    work = tmpdir("k8s-schemas")
    try:
        objs, seen = [], set()
        for d in ("base", os.path.join("overlays", "example")):
            objs += render(os.path.join(k8s, d))
        for o in objs:
            seen.add(module_of(o))
        ajv, tsc = validate(prefix, work, objs, "rendered")
        bad = [(o["kind"], o["metadata"]["name"], e) for o, e in zip(objs, ajv) if e]
        check(not bad, "the Kubernetes schemas reject: %s" % bad)
        check(tsc is None, "the Kubernetes types reject the objects:\n%s" % tsc)

        # broken copies must be rejected
        dep = find(render(os.path.join(k8s, "base")), "Deployment")
        as_string = copy.deepcopy(dep)
        as_string["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = \
            "8080"
        misspelt = copy.deepcopy(dep)
        c = misspelt["spec"]["template"]["spec"]["containers"][0]
        c["readinesProbe"] = c.pop("readinessProbe")
        nameless = copy.deepcopy(dep)
        del nameless["spec"]["template"]["spec"]["containers"][0]["name"]
        ajv, _ = validate(prefix, work, [as_string, nameless], "broken", types=False)
        check(ajv[0], "the schemas accepted a containerPort given as a string")
        check(ajv[1], "the schemas accepted a container without a name")
        # the OpenAPI schemas allow unknown fields: the types are what catch a misspelt one
        _, tsc = validate(prefix, work, [misspelt], "misspelt")
        check(tsc and "readinesProbe" in tsc, "the types accepted readinessProbe misspelt "
              "readinesProbe: %s" % tsc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("check_k8s: %d objects (%s) valid against the Kubernetes schemas (kubernetes-models, "
          "ajv) and types (tsc); broken copies rejected" % (len(objs), ", ".join(sorted(seen))))
    return 0


def main():
    source, build, mode = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    try:
        if mode == "structure":
            structure(source, build)
            return 0
        if mode == "schemas":
            return schemas(source, build)
        raise Failure("unknown mode %s" % mode)
    except Failure as e:
        print("check_k8s: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
