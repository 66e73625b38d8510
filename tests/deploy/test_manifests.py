"""The deployment files: Kubernetes manifests valid against the API schema, the kustomization
complete, the compose files and the Dockerfile consistent with what the service reads."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.service import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"


def test_kubernetes_manifests_are_valid_resources() -> None:
    files = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kustomization_deploys_every_long_running_resource() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"repair-job.yaml"}  # the Job runs once, on demand
    kinds = {yaml.safe_load((KUBERNETES / f).read_text())["kind"] for f in listed}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    } <= kinds


def test_a_rolling_update_and_a_drain_keep_a_replica_serving() -> None:
    serve = yaml.safe_load((KUBERNETES / "serve-deployment.yaml").read_text())
    rolling = serve["spec"]["strategy"]["rollingUpdate"]
    assert serve["spec"]["replicas"] >= 2 and rolling["maxUnavailable"] == 0
    budget = yaml.safe_load((KUBERNETES / "serve-disruption-budget.yaml").read_text())
    labels = serve["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] >= 1


def test_probes_and_environment_match_the_service() -> None:
    from app.core.config import Settings

    serve = yaml.safe_load((KUBERNETES / "serve-deployment.yaml").read_text())
    container = serve["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["memory"]
    known = {name.upper() for name in Settings.model_fields}
    for env in container["env"]:
        assert env["name"] in known, f"{env['name']} is not a setting of the service"
    claim = yaml.safe_load((KUBERNETES / "models-volume.yaml").read_text())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_images_run_as_non_root_and_carry_no_secrets() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert len(users) == 2 and all(u.split(":")[0] not in ("root", "0") for u in users)
    for name, value in re.findall(r"(\w*(?:TOKEN|KEY|SECRET|PASSWORD)\w*)=(\S*)", dockerfile):
        assert value in ("", '""'), f"{name} has a value baked into the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)
    for compose in (ROOT / "docker-compose.yml", ROOT / "deploy" / "test" / "compose.yml"):
        text = compose.read_text()
        assert re.search(r"ADMIN_TOKEN: \$\{ADMIN_TOKEN(:-)?\}", text), compose
