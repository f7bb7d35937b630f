"""Tools the deployment tests run, found where scripts/install-deps.sh puts them: YAML through
Debian's python3-yaml (the venv has no YAML parser), promtool, helm, kubeconform and the
Kubernetes JSON schemas for kubeconform (built from PyPI's kubernetes-validate package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .stack import REPO

CACHE = Path(os.environ.get("OUTBOXD_TEST_CACHE")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "outboxd")
K8S_VERSION = "1.31.0"  # the Kubernetes version kubeconform validates against


def load_yaml(text: str) -> list:
    """Every document of a YAML text (None for empty ones), read with Debian's python3-yaml."""
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"],
                       input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def tool(name: str, where: str = "scripts/install-deps.sh") -> str:
    """NAME from install-deps.sh's Go bin directory or PATH; fails the test when missing."""
    for cand in (CACHE / "go-bin" / name,):
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run {where}", pytrace=False)
    return found


def kubeconform_schemas(kinds: list[str]) -> Path:
    """A schema directory for kubeconform's -schema-location (standalone, strict) holding the
    given files (e.g. deployment-apps-v1.json), made by scripts/k8s-schemas.py."""
    out = CACHE / "k8s-schemas"
    venv_python = CACHE / "k8s-schemas-venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.fail("the Kubernetes schemas are not installed: run scripts/install-deps.sh", pytrace=False)
    r = subprocess.run([str(venv_python), str(REPO / "scripts" / "k8s-schemas.py"), K8S_VERSION, str(out), *kinds],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out
