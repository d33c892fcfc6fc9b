"""k8s_render.py: the kustomize subset deploy/k8s uses, rendered in Python (Debian 12 packages no
kustomize, and its kubectl, 1.20, predates components).

A Kustomization's resources (files, or folders with their own kustomization.yaml), its
components (folders of kind Component: resources and patches), namespace, images, and patches
of JSON 6902 operations (add, remove, replace) with a target by group, version, kind and name.
Any other field of a kustomization is an error, so deploy/k8s cannot use a feature this
renderer would silently skip. The result is the list of objects kustomize would print (in the
order of the files; kustomize sorts them, which no check here relies on)."""
import copy
import os

import yaml

from deploytest import Failure, check

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "components", "namespace", "images",
                      "patches"}
COMPONENT_KEYS = {"apiVersion", "kind", "resources", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}


def read_kustomization(folder):
    path = os.path.join(folder, "kustomization.yaml")
    check(os.path.exists(path), "%s: no kustomization.yaml" % folder)
    with open(path) as f:
        k = yaml.safe_load(f)
    check(isinstance(k, dict), "%s is not a mapping" % path)
    return path, k


def load_objects(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and
              (d.get("metadata") or {}).get("name"),
              "%s: every object needs apiVersion, kind and metadata.name" % path)
    return docs


def render(folder):
    """The objects `kustomize build folder` would give."""
    path, k = read_kustomization(folder)
    check(k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and
          k.get("kind") == "Kustomization", "%s: expected a v1beta1 Kustomization" % path)
    unknown = set(k) - KUSTOMIZATION_KEYS
    check(not unknown, "%s: %s not supported by tests/deploy/k8s_render.py" % (path,
                                                                                sorted(unknown)))
    objs = []
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(folder, r))
        if os.path.isdir(p):
            objs += render(p)
        else:
            check(os.path.isfile(p), "%s: resource %s does not exist" % (path, r))
            objs += load_objects(p)
    for c in k.get("components") or []:
        objs = apply_component(os.path.normpath(os.path.join(folder, c)), objs)
    for p in k.get("patches") or []:
        objs = apply_patch(path, p, objs)
    ns = k.get("namespace")
    if ns:
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = ns
    for img in k.get("images") or []:
        set_image(objs, img)
    names = [(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
             for o in objs]
    dup = {n for n in names if names.count(n) > 1}
    check(not dup, "%s: the same object twice: %s" % (path, sorted(dup)))
    return objs


def apply_component(folder, objs):
    path, k = read_kustomization(folder)
    check(k.get("apiVersion") == "kustomize.config.k8s.io/v1alpha1" and
          k.get("kind") == "Component", "%s: expected a v1alpha1 Component" % path)
    unknown = set(k) - COMPONENT_KEYS
    check(not unknown, "%s: %s not supported by tests/deploy/k8s_render.py" % (path,
                                                                                sorted(unknown)))
    objs = list(objs)
    for r in k.get("resources") or []:
        p = os.path.join(folder, r)
        check(os.path.isfile(p), "%s: resource %s does not exist" % (path, r))
        objs += load_objects(p)
    for p in k.get("patches") or []:
        objs = apply_patch(path, p, objs)
    return objs


def matches(target, o):
    group, _, version = o["apiVersion"].rpartition("/")
    want = {"group": group, "version": version, "kind": o["kind"], "name": o["metadata"]["name"]}
    return all(want[key] == v for key, v in target.items())


def apply_patch(path, p, objs):
    check(set(p) == {"target", "patch"}, "%s: a patch needs target and an inline patch "
          "(JSON 6902) here" % path)
    ops = yaml.safe_load(p["patch"])
    check(isinstance(ops, list), "%s: the patch is not a list of JSON 6902 operations" % path)
    hit = [o for o in objs if matches(p["target"], o)]
    check(hit, "%s: the patch's target %s matches no object" % (path, p["target"]))
    out = []
    for o in objs:
        if o in hit:
            o = copy.deepcopy(o)
            for op in ops:
                json6902(path, o, op)
        out.append(o)
    return out


def json6902(path, doc, op):
    parts = [s.replace("~1", "/").replace("~0", "~") for s in op["path"].split("/")[1:]]
    parent = doc
    for s in parts[:-1]:
        parent = parent[int(s)] if isinstance(parent, list) else parent.get(s)
        check(parent is not None, "%s: %s: no such path" % (path, op["path"]))
    last = parts[-1]
    if op["op"] == "remove":
        check(last in parent if isinstance(parent, dict) else True,
              "%s: remove %s: no such field" % (path, op["path"]))
        del parent[int(last) if isinstance(parent, list) else last]
    elif op["op"] in ("add", "replace"):
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), op["value"])
        else:
            check(op["op"] == "add" or last in parent, "%s: replace %s: no such field" %
                  (path, op["path"]))
            parent[last] = op["value"]
    else:
        raise Failure("%s: JSON 6902 %s not supported here" % (path, op["op"]))


def set_image(objs, img):
    for o in objs:
        spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            name, _, tag = c["image"].partition(":")
            if name == img["name"]:
                c["image"] = "%s:%s" % (img.get("newName", name), img.get("newTag", tag))


def listed_exactly(folder):
    """The kustomization lists every .yaml file of its folder, and only those."""
    path, k = read_kustomization(folder)
    files = {f for f in os.listdir(folder) if f.endswith((".yaml", ".yml"))} - \
        {"kustomization.yaml"}
    listed = {r for r in k.get("resources") or [] if "/" not in r}
    check(files == listed, "%s: lists %s, the folder holds %s" % (path, sorted(listed),
                                                                   sorted(files)))
