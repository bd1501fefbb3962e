"""The cross-checks of deploy/k8s (k8s_checks.py, k8s_mesh_checks.py, k8s_network_checks.py)
pass on every overlay as rendered by `kubectl kustomize`, and each fails on a deliberately
broken copy of the rendered manifests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.deploy.k8s_checks import (
    check_no_plaintext_secrets,
    check_references,
    check_selectors,
    check_workloads,
)
from tests.deploy.k8s_mesh_checks import check_mesh_config
from tests.deploy.k8s_model import Doc, find
from tests.deploy.k8s_network_checks import check_network_policies
from tests.deploy.k8s_tools import OVERLAYS, render, working_copy

VARIANTS = (*OVERLAYS, "cpu-external-redis")
CHECKS = (check_selectors, check_references, check_workloads, check_no_plaintext_secrets,
          check_mesh_config, check_network_policies)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    root = working_copy(tmp_path_factory.mktemp("k8s"))
    return {v: render(root / "overlays" / v) for v in VARIANTS}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(rendered: dict[str, list[Doc]], variant: str, check: Callable) -> None:
    assert check(rendered[variant]) == []


# ---- broken copies: (variant, what is broken, the check that must catch it, words of its report)


def obj(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert found is not None, f"{kind}/{name}"
    return found


def pod(docs: list[Doc], kind: str, name: str) -> Doc:
    return obj(docs, kind, name)["spec"]["template"]["spec"]


def container(docs: list[Doc], kind: str, name: str, cname: str) -> Doc:
    spec = pod(docs, kind, name)
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == cname)


def configmap(docs: list[Doc], prefix: str) -> Doc:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix))


def edit_mesh_config(docs: list[Doc], change: Callable[[dict], None]) -> None:
    cm = configmap(docs, "ostinato-config")
    cfg = yaml.safe_load(cm["data"]["ostinato.yaml"])
    change(cfg)
    cm["data"]["ostinato.yaml"] = yaml.safe_dump(cfg)


def set_env(c: Doc, name: str, value: str) -> None:
    c["env"] = [v for v in c.get("env", []) if v["name"] != name] + [{"name": name, "value": value}]


def svc_port(docs: list[Doc], name: str, port_name: str) -> Doc:
    return next(p for p in obj(docs, "Service", name)["spec"]["ports"] if p["name"] == port_name)


GW = ("Deployment", "gateway", "gateway")
PL = ("Deployment", "planner", "planner")
WK = ("StatefulSet", "worker", "worker")
ENGINE = ("StatefulSet", "worker", "engine")

BROKEN: list[tuple[str, str, Callable[[list[Doc]], object], Callable, str]] = [
    # Service selector typo, target port typo, PDB / HPA / StatefulSet pointing at nothing
    ("cpu", "planner Service selector typo", lambda d: obj(d, "Service", "planner")["spec"]["selector"]
     .update({"app.kubernetes.io/component": "plannr"}), check_selectors, "matches no pod template"),
    ("cpu", "worker Service targetPort typo", lambda d: svc_port(d, "worker", "grpc")
     .update(targetPort="grcp"), check_selectors, "no container port"),
    ("cpu", "PDB selector typo", lambda d: obj(d, "PodDisruptionBudget", "gateway")["spec"]["selector"]
     ["matchLabels"].update({"app.kubernetes.io/component": "gw"}), check_selectors, "matches no pod"),
    ("cpu", "HPA target missing", lambda d: obj(d, "HorizontalPodAutoscaler", "gateway")["spec"]
     ["scaleTargetRef"].update(name="gateways"), check_selectors, "does not exist"),
    ("cpu", "StatefulSet serviceName not headless", lambda d: obj(d, "StatefulSet", "redis")["spec"]
     .update(serviceName="redis"), check_selectors, "not a headless Service"),
    # a ConfigMap / Secret (or key) referenced but missing
    ("cpu", "ConfigMap missing", lambda d: d.remove(configmap(d, "ostinato-model")),
     check_references, "does not exist"),
    ("cpu", "Secret key typo", lambda d: container(d, *GW)["env"][0]["valueFrom"]["secretKeyRef"]
     .update(key="api-key"), check_references, "lacks"),
    ("gpu-sglang", "ConfigMap key typo", lambda d: container(d, *ENGINE)["env"][0]["valueFrom"]
     ["configMapKeyRef"].update(key="MODEL_PATH"), check_references, "lacks"),
    ("cpu", "volume mount of no volume", lambda d: container(d, *PL)["volumeMounts"][0]
     .update(name="configs"), check_references, "does not have"),
    # requests and limits, probes, pinned images, GPUs, PDBs, HPA
    ("cpu", "no resources", lambda d: container(d, *GW).pop("resources"), check_workloads, "no requests"),
    ("cpu", "image :latest", lambda d: container(d, "StatefulSet", "redis", "redis")
     .update(image="redis:latest"), check_workloads, "not pinned"),
    ("cpu", "no readiness probe", lambda d: container(d, *WK).pop("readinessProbe"),
     check_workloads, "no readinessProbe"),
    ("gpu-sglang", "GPU only requested", lambda d: container(d, *ENGINE)["resources"]["limits"]
     .pop("nvidia.com/gpu"), check_workloads, "extended resource"),
    ("cpu", "replicas beside an HPA", lambda d: obj(d, "Deployment", "gateway")["spec"]
     .update(replicas=3), check_workloads, "sets replicas"),
    ("cpu", "no PDB for workers", lambda d: d.remove(obj(d, "PodDisruptionBudget", "worker")),
     check_workloads, "no PodDisruptionBudget"),
    # secrets in plain text
    ("cpu", "API keys as a literal env value", lambda d: set_env(
        container(d, *GW), "OSTINATO_GATEWAY__API_KEYS", "sk-live-123=acme"),
     check_no_plaintext_secrets, "plain text"),
    ("cpu", "API keys in the mesh config", lambda d: edit_mesh_config(
        d, lambda c: c["gateway"].update(api_keys={"sk-live-123": "acme"})),
     check_no_plaintext_secrets, "plain text"),
    ("cpu", "Redis password in the mesh config", lambda d: edit_mesh_config(
        d, lambda c: c["redis"].update(url="redis://default:hunter2@redis:6379/0")),
     check_no_plaintext_secrets, "plain text"),
    ("gpu-sglang", "token in args", lambda d: container(d, *ENGINE)["args"]
     .extend(["--api-key", "sk-live-123"]), check_no_plaintext_secrets, "plain text"),
    # ports and env vars against the mesh config
    ("cpu", "gateway container port", lambda d: container(d, *GW)["ports"][0]
     .update(containerPort=50055), check_mesh_config, "container ports lack [50051]"),
    ("cpu", "planner Service port", lambda d: svc_port(d, "planner", "grpc").update(port=50053),
     check_mesh_config, "has no port 50052"),
    ("cpu", "planner listening elsewhere", lambda d: edit_mesh_config(
        d, lambda c: c["planner"].update(port=50099)), check_mesh_config, "listens on"),
    ("cpu", "unknown OSTINATO_ variable", lambda d: set_env(
        container(d, *GW), "OSTINATO_GATEWAY__CACHE_MODES", "exact"),
     check_mesh_config, "unknown field in gateway: cache_modes"),
    ("cpu", "engine port", lambda d: container(d, *ENGINE)["ports"][0].update(containerPort=30001),
     check_mesh_config, "engine"),
    ("cpu", "KV events port", lambda d: edit_mesh_config(
        d, lambda c: c["worker"].update(engine_kv_events="tcp://127.0.0.1:5559")),
     check_mesh_config, "KV events endpoint"),
    ("cpu", "worker advertises loopback", lambda d: set_env(
        container(d, *WK), "OSTINATO_WORKER__ADVERTISE_ADDRESS", "127.0.0.1:50061"),
     check_mesh_config, "pod IP"),
    ("cpu", "one worker id for every pod", lambda d: set_env(
        container(d, *WK), "OSTINATO_WORKER__WORKER_ID", "worker"), check_mesh_config, "distinct"),
    ("cpu", "TCP probe, not gRPC health", lambda d: container(d, *PL).update(
        readinessProbe={"tcpSocket": {"port": 50052}}), check_mesh_config, "gRPC health probe"),
    ("cpu", "planner bound to loopback", lambda d: edit_mesh_config(
        d, lambda c: c["planner"].update(host="127.0.0.1")), check_mesh_config, "is not all interfaces"),
    ("cpu", "a flag beside --config", lambda d: container(d, *GW)["args"].extend(["--port", "1"]),
     check_mesh_config, "takes only"),
    ("gpu-sglang", "tokenizers disagree", lambda d: configmap(d, "ostinato-model")["data"]
     .update(OSTINATO_WORKER__KV_TOKENIZER="sim"), check_mesh_config, "must name the same tokenizer"),
    ("gpu-sglang", "SGLang serves another model", lambda d: configmap(d, "ostinato-model")["data"]
     .update(SGLANG_MODEL_PATH="meta-llama/Llama-3.1-8B-Instruct"), check_mesh_config, "SGLang serves"),
    ("gpu-sglang", "tokenizer never fetched", lambda d: obj(d, "Deployment", "gateway")["spec"]
     ["template"]["spec"].pop("initContainers"), check_mesh_config, "an init container of the pod"),
    ("gpu-sglang", "tokenizer a Hub id", lambda d: configmap(d, "ostinato-model")["data"].update(
        OSTINATO_GATEWAY__KV_TOKENIZER="hf:Qwen/Qwen2.5-72B-Instruct",
        OSTINATO_WORKER__KV_TOKENIZER="hf:Qwen/Qwen2.5-72B-Instruct"), check_mesh_config,
     "is not SGLang's model"),
    ("gpu-sglang", "no priority scheduling", lambda d: container(d, *ENGINE)["args"]
     .remove("--enable-priority-scheduling"), check_mesh_config, "--enable-priority-scheduling"),
    ("cpu-external-redis", "external Redis URL as a literal", lambda d: set_env(
        container(d, *PL), "OSTINATO_REDIS__URL", "redis://cache.example:6379/0"),
     check_mesh_config, "no Service 'cache'"),
    # network policies
    ("cpu", "no default deny", lambda d: d.remove(obj(d, "NetworkPolicy", "default-deny-ingress")),
     check_network_policies, "no default-deny"),
    ("cpu", "planner open to anywhere", lambda d: obj(d, "NetworkPolicy", "planner-from-gateway-and-workers")
     ["spec"]["ingress"][0].pop("from"), check_network_policies, "not the gateway"),
    ("cpu", "Prometheus let into the gRPC port", lambda d: obj(d, "NetworkPolicy", "metrics-from-monitoring")
     ["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 50052}),
     check_network_policies, "not the gateway"),
    ("cpu", "gateway metrics open to anywhere", lambda d: obj(d, "NetworkPolicy", "gateway-from-anywhere")
     ["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 9464}),
     check_network_policies, "the gateway's metrics port"),
    ("cpu", "gateway metrics in its Service", lambda d: obj(d, "Service", "gateway")["spec"]["ports"]
     .append({"name": "metrics", "port": 9464, "targetPort": "metrics"}),
     check_network_policies, "carries the gateway's metrics port"),
    ("cpu", "gateway -> workers denied", lambda d: d.remove(obj(d, "NetworkPolicy", "worker-from-gateway")),
     check_network_policies, "-> StatefulSet/worker:50061"),
    ("cpu", "workers -> planner denied", lambda d: obj(d, "NetworkPolicy", "planner-from-gateway-and-workers")
     ["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0].update(values=["gateway"]),
     check_network_policies, "StatefulSet/worker -> Deployment/planner:50052"),
    ("cpu", "Redis exposed", lambda d: obj(d, "Service", "redis")["spec"].update(type="LoadBalancer"),
     check_network_policies, "exposed beyond the cluster"),
]


@pytest.mark.parametrize(("variant", "broken", "mutate", "check", "expected"), BROKEN,
                         ids=[b[1] for b in BROKEN])
def test_check_fails_on_broken_copy(rendered: dict[str, list[Doc]], variant: str, broken: str,
                                    mutate: Callable, check: Callable, expected: str) -> None:
    docs = copy.deepcopy(rendered[variant])
    mutate(docs)
    problems = check(docs)
    assert problems, f"{check.__name__} passed a copy with: {broken}"
    assert any(expected in p for p in problems), problems


def test_every_check_has_broken_copies() -> None:
    assert {b[3] for b in BROKEN} == set(CHECKS)


def test_rendered_namespaced(rendered: dict[str, list[Doc]]) -> None:
    """Everything lands in the ostinato namespace, the generated Secrets of components too."""
    for docs in rendered.values():
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"ostinato"}


def test_external_redis_replaces_the_in_cluster_one(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["cpu-external-redis"]
    assert not [d for d in docs if d["metadata"]["name"].startswith("redis")]
    for kind, name, cname in (GW, PL, WK):
        env = {v["name"]: v for v in container(docs, kind, name, cname)["env"]}
        assert env["OSTINATO_REDIS__URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"


def test_working_copy_leaves_the_repo_alone(tmp_path: Path) -> None:
    root = working_copy(tmp_path)
    assert (root / "base" / "secrets" / "api-keys.env").is_file()
