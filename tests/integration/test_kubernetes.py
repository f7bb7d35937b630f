"""contrib/helm/outboxd: the Helm chart for outboxd (active + standby) and inboxd, checked with
helm lint, helm template and kubeconform (strict, against the Kubernetes 1.31 schemas from
PyPI's kubernetes-validate), and for what docs/kubernetes.md promises: probes on /healthz and
/readyz, secrets only from Secrets, the restart behaviour of the exit codes, and configuration
files that the real binaries accept.

Needs helm, kubeconform and the schemas (scripts/install-deps.sh) and built daemons; no stack."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness import K8S_VERSION, REPO, default_inboxd_bin, default_outboxd_bin, kubeconform_schemas, load_yaml, tool

CHART = REPO / "contrib" / "helm" / "outboxd"
VALUES = CHART / "ci" / "test-values.yaml"
SCHEMAS = ["deployment-apps-v1.json", "service-v1.json", "configmap-v1.json", "poddisruptionbudget-policy-v1.json",
           "pod-v1.json"]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"helm {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r


def render(*sets: str, values: Path = VALUES) -> tuple[str, list[dict]]:
    out = helm("template", "shop", str(CHART), "-f", str(values), *[a for s in sets for a in ("--set", s)]).stdout
    return out, [d for d in load_yaml(out) if d]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_helm_lint():
    r = helm("lint", "--strict", str(CHART), "-f", str(VALUES))
    assert "0 chart(s) failed" in r.stdout, r.stdout


def test_kubeconform_accepts_every_manifest(tmp_path):
    text, docs = render("outboxd.checkOnStart=true")
    f = tmp_path / "manifests.yaml"
    f.write_text(text)
    schemas = kubeconform_schemas(SCHEMAS)
    r = subprocess.run([tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", K8S_VERSION,
                        "-schema-location",
                        str(schemas) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
                        "{{ .ResourceKind }}{{ .KindSuffix }}.json", str(f)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(docs)} resources found in 1 file - Valid: {len(docs)}, Invalid: 0, Errors: 0, Skipped: 0" in r.stdout
    # kubeconform catches a mistake: a misspelt probe field.
    f.write_text(text.replace("periodSeconds: 15", "periodSecond: 15", 1))
    bad = subprocess.run([tool("kubeconform"), "-strict", "-kubernetes-version", K8S_VERSION, "-schema-location",
                          str(schemas) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
                          "{{ .ResourceKind }}{{ .KindSuffix }}.json", str(f)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "periodSecond" in bad.stdout, bad.stdout


def test_outboxd_active_standby_probes_restarts_secrets():
    _, docs = render()
    deps = by_kind(docs, "Deployment")
    o, i = deps["shop-outboxd-outboxd"], deps["shop-outboxd-inboxd"]
    assert o["spec"]["replicas"] == 2, "active + standby"
    # The new pod stands by before the old one stops (docs/operations.md, "Upgrading outboxd").
    assert o["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert by_kind(docs, "PodDisruptionBudget")["shop-outboxd-outboxd"]["spec"]["maxUnavailable"] == 1
    for dep, readiness in ((o, "/healthz"), (i, "/readyz")):
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": readiness, "port": "metrics"}
        # Exit 1 is retried with back-off, exit 2 shows its one-line reason (docs/kubernetes.md).
        assert pod["restartPolicy"] == "Always"
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert pod["terminationGracePeriodSeconds"] >= 45, "longer than shutdown.timeout.ms + the final update"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        # Secrets only by reference: no connection string or password in any manifest.
        env = {e["name"]: e for e in c["env"]}
        assert all("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in env.values()), env
        assert "PGPASSWORD" in env
    o_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert o_env["OUTBOXD_POSTGRES_CONNINFO"] == {"name": "outboxd-postgres", "key": "conninfo"}
    assert o_env["OUTBOXD_KAFKA_SASL_PASSWORD"] == {"name": "outboxd-postgres", "key": "kafka-password"}
    assert by_kind(docs, "Service")["shop-outboxd-outboxd-metrics"]["spec"]["publishNotReadyAddresses"] is True
    hook = by_kind(docs, "Pod")["shop-outboxd-check"]
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert hook["spec"]["containers"][0]["args"][:2] == ["outboxd", "check"]
    assert hook["spec"]["restartPolicy"] == "Never"


def test_rendered_configuration_is_accepted_by_the_daemons(tmp_path):
    """The ConfigMap's files, with the Secret's variables, pass the binaries' own
    --print-config, and http.listen serves the probes' port on every interface."""
    _, docs = render()
    data = by_kind(docs, "ConfigMap")["shop-outboxd-config"]["data"]
    for name, binary, port, env in (("outboxd", default_outboxd_bin(), 9632, "OUTBOXD_POSTGRES_CONNINFO"),
                                    ("inboxd", default_inboxd_bin(), 9633, "INBOXD_POSTGRES_CONNINFO")):
        f = tmp_path / f"{name}.conf"
        f.write_text(data[f"{name}.conf"])
        r = subprocess.run([str(binary), "-c", str(f), "--print-config"], capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin", env: "host=db dbname=app"})
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"http.listen = 0.0.0.0:{port}" in r.stdout
    assert "outbox.on_invalid = dead-letter" in data["outboxd.conf"]


def test_check_on_start_and_a_missing_secret():
    _, docs = render("outboxd.checkOnStart=true")
    init = by_kind(docs, "Deployment")["shop-outboxd-outboxd"]["spec"]["template"]["spec"]["initContainers"]
    assert init[0]["args"] == ["outboxd", "check", "-c", "/etc/outboxd/outboxd.conf"]
    r = helm("template", "shop", str(CHART), check=False)
    assert r.returncode != 0 and "outboxd.secret.name: name the Secret" in r.stderr, r.stderr
