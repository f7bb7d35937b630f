#!/usr/bin/env python3
"""Kubernetes JSON schemas for kubeconform, made from PyPI's kubernetes-validate package.

kubeconform cannot download schemas where no such site is reachable; kubernetes-validate ships
them (one file per kind and version, their $refs into a shared _definitions.json). This writes,
for each kind asked for, a standalone strict schema (the definitions it needs copied in) where
kubeconform's -schema-location finds it:

  DIR/v<VERSION>-standalone-strict/<kind>-<group>-<version>.json

Usage: k8s-schemas.py K8S_VERSION DIR FILE...   (e.g. 1.31.0 ~/.cache/outboxd/k8s-schemas
deployment-apps-v1.json service-v1.json); run with the Python that has kubernetes-validate.
"""

import json
import os
import sys
from importlib import resources


def refs(node, out: set) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and "#/$defs/" in v:
                out.add(v.split("#/$defs/", 1)[1])
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def local(node):
    """$refs into _definitions.json made local: #/definitions/<name>."""
    if isinstance(node, dict):
        return {k: "#/definitions/" + v.split("#/$defs/", 1)[1] if k == "$ref" and isinstance(v, str) and "#/$defs/" in v
                else local(v) for k, v in node.items()}
    if isinstance(node, list):
        return [local(v) for v in node]
    return node


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    version, out_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    src = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    if not src.is_dir():
        print(f"k8s-schemas: kubernetes-validate has no schemas for Kubernetes {version}", file=sys.stderr)
        return 1
    defs = json.loads((src / "_definitions.json").read_text())["$defs"]
    dst = os.path.join(out_dir, f"v{version}-standalone-strict")
    os.makedirs(dst, exist_ok=True)
    for name in files:
        schema = json.loads((src / name).read_text())
        need: set = set()
        todo: set = set()
        refs(schema, todo)
        while todo:
            d = todo.pop()
            if d not in need:
                need.add(d)
                refs(defs[d], todo)
        schema = local(schema)
        schema["definitions"] = {d: local(defs[d]) for d in sorted(need)}
        tmp = os.path.join(dst, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(schema, f)
        os.replace(tmp, os.path.join(dst, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
