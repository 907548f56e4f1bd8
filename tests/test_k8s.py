"""Every Kubernetes manifest validates against the Kubernetes schema (shipped with
kubernetes-validate, so no cluster and no download), and keeps the promises the serving
issue makes: probes, non-root, ORT threads matched to the CPU limit."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S = Path(__file__).resolve().parents[1] / "k8s"


def documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_every_manifest_validates_against_the_kubernetes_schema():
    docs = documents()
    assert {d["kind"] for d in docs} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Job",
    }
    for doc in docs:
        validate(doc)


def test_the_validator_catches_a_broken_manifest():
    deployment = copy.deepcopy(next(d for d in documents() if d["kind"] == "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = copy.deepcopy(next(d for d in documents() if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/livez"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_serving_pods_probe_run_as_non_root_and_share_the_cpu_limit():
    deployment = next(d for d in documents() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["BEARID_ORT_THREADS"]) * int(env["BEARID_WORKERS"]) == int(container["resources"]["limits"]["cpu"])
    job = next(d for d in documents() if d["kind"] == "Job")
    train = job["spec"]["template"]["spec"]["containers"][0]
    assert train["command"][0] == "torchrun" and train["resources"]["limits"]["nvidia.com/gpu"]
