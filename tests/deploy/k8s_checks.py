"""Cross-checks of rendered Kubernetes manifests that no schema validator makes: each takes
the documents `kubectl kustomize` printed and returns a list of problems (empty: passed).
The mesh-specific ones (config, ports, network paths) are in k8s_mesh_checks.py."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.k8s_model import (
    Doc,
    PodTemplate,
    by_kind,
    find,
    ident,
    namespace,
    object_data,
    pod_templates,
    selector_matches,
    service_selects,
    volume_claim_names,
)


def check_selectors(docs: list[Doc]) -> list[str]:
    """Every selector selects something: Services (and their target ports), workloads'
    own templates, PDBs, NetworkPolicies, HPA targets, StatefulSets' governing Services."""
    problems = []
    pods = pod_templates(docs)

    def pods_in(ns: str) -> list[PodTemplate]:
        return [p for p in pods if p.namespace == ns]

    for svc in by_kind(docs, "Service"):
        selector = svc["spec"].get("selector") or {}
        if not selector:
            continue  # a Service without selector is managed by hand (none here)
        matched = [p for p in pods_in(namespace(svc)) if service_selects(selector, p.labels)]
        if not matched:
            problems.append(f"{ident(svc)}: selector {selector} matches no pod template")
        for port in svc["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            for pod in matched:
                if pod.port(target) is None:
                    problems.append(f"{ident(svc)}: port {port.get('name', port['port'])} targets "
                                    f"{target!r}, which {pod.name} has no container port for")
    for pod in pods:
        if not selector_matches(pod.owner["spec"].get("selector"), pod.labels):
            problems.append(f"{pod.name}: spec.selector does not match its own pod template")
        for tsc in pod.spec.get("topologySpreadConstraints") or []:
            if not selector_matches(tsc.get("labelSelector"), pod.labels):
                problems.append(f"{pod.name}: a topologySpreadConstraint selects other pods")
        if pod.owner["kind"] == "StatefulSet":
            name = pod.owner["spec"].get("serviceName")
            svc = find(docs, "Service", name, pod.namespace) if name else None
            if svc is None or svc["spec"].get("clusterIP") != "None" or \
                    not service_selects(svc["spec"].get("selector") or {}, pod.labels):
                problems.append(f"{pod.name}: serviceName {name!r} is not a headless Service "
                                f"selecting its pods")
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        if not any(selector_matches(pdb["spec"].get("selector"), p.labels)
                   for p in pods_in(namespace(pdb))):
            problems.append(f"{ident(pdb)}: selector matches no pod template")
    for pol in by_kind(docs, "NetworkPolicy"):
        selectors = [pol["spec"].get("podSelector") or {}]
        for rule in pol["spec"].get("ingress") or []:
            selectors += [peer["podSelector"] for peer in rule.get("from") or []
                          if "podSelector" in peer and "namespaceSelector" not in peer]
        for sel in selectors:
            if sel and not any(selector_matches(sel, p.labels) for p in pods_in(namespace(pol))):
                problems.append(f"{ident(pol)}: pod selector {sel} matches no pod template")
    for hpa in by_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if find(docs, ref["kind"], ref["name"], namespace(hpa)) is None:
            problems.append(f"{ident(hpa)}: scale target {ref['kind']}/{ref['name']} does not exist")
    return problems


def check_references(docs: list[Doc]) -> list[str]:
    """Every ConfigMap and Secret a pod references exists with the keys it names (unless
    marked optional); every volume mount names a volume; probe ports exist."""
    problems = []

    def need(pod: PodTemplate, kind: str, name: str, keys: list[str], optional: bool, what: str) -> None:
        obj = find(docs, kind, name, pod.namespace)
        if obj is None:
            if not optional:
                problems.append(f"{pod.name}: {what} references {kind} {name!r}, which does not exist")
            return
        missing = sorted(set(keys) - set(object_data(obj)))
        if missing and not optional:
            problems.append(f"{pod.name}: {what} references key(s) {missing} that {kind} {name!r} lacks")

    for pod in pod_templates(docs):
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        for name, vol in volumes.items():
            if "configMap" in vol:
                cm = vol["configMap"]
                need(pod, "ConfigMap", cm["name"], [i["key"] for i in cm.get("items") or []],
                     cm.get("optional", False), f"volume {name}")
            if "secret" in vol:
                sec = vol["secret"]
                need(pod, "Secret", sec["secretName"], [i["key"] for i in sec.get("items") or []],
                     sec.get("optional", False), f"volume {name}")
            for src in (vol.get("projected") or {}).get("sources") or []:
                for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                    if key in src:
                        need(pod, kind, src[key]["name"], [i["key"] for i in src[key].get("items") or []],
                             src[key].get("optional", False), f"volume {name}")
            if "persistentVolumeClaim" in vol and \
                    find(docs, "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"],
                         pod.namespace) is None:
                problems.append(f"{pod.name}: volume {name} claims a PersistentVolumeClaim that "
                                f"does not exist")
        claims = volume_claim_names(pod)
        for c in pod.all_containers():
            where = f"container {c['name']}"
            for src in c.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in src:
                        need(pod, kind, src[key]["name"], [], src[key].get("optional", False),
                             f"{where} envFrom")
            for var in c.get("env") or []:
                ref = var.get("valueFrom") or {}
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                    if key in ref:
                        need(pod, kind, ref[key]["name"], [ref[key]["key"]],
                             ref[key].get("optional", False), f"{where} env {var['name']}")
            for mount in c.get("volumeMounts") or []:
                if mount["name"] not in volumes and mount["name"] not in claims:
                    problems.append(f"{pod.name}: {where} mounts volume {mount['name']!r}, "
                                    f"which the pod does not have")
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(probe_name) or {}
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    port = (probe.get(handler) or {}).get("port")
                    if port is not None and isinstance(port, str) and not any(
                            p.get("name") == port for p in c.get("ports") or []):
                        problems.append(f"{pod.name}: {where} {probe_name} port {port!r} is not "
                                        f"one of its named ports")
    return problems


def check_workloads(docs: list[Doc]) -> list[str]:
    """Requests and limits on every container, readiness and liveness on every long-running
    one, pinned images, GPUs requested as limits, a PodDisruptionBudget for every workload
    that runs more than one pod, and HPAs whose targets can be measured."""
    problems = []
    pdbs = by_kind(docs, "PodDisruptionBudget")
    hpa_targets = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]): h
                   for h in by_kind(docs, "HorizontalPodAutoscaler")}
    for pod in pod_templates(docs):
        for c in pod.all_containers():
            where = f"{pod.name} container {c['name']}"
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                missing = [r for r in ("cpu", "memory") if r not in (res.get(kind) or {})]
                if missing:
                    problems.append(f"{where}: no {kind} for {', '.join(missing)}")
            for name, value in (res.get("requests") or {}).items():
                if "/" in name and (res.get("limits") or {}).get(name) != value:
                    problems.append(f"{where}: extended resource {name} must be in limits, equal "
                                    f"to its request")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if "@sha256:" not in image and tag in ("", "latest"):
                problems.append(f"{where}: image {image!r} is not pinned to a version")
        for c in pod.containers():
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c and pod.owner["kind"] != "Job":
                    problems.append(f"{pod.name} container {c['name']}: no {probe}")
        hpa = hpa_targets.get((pod.owner["kind"], pod.owner["metadata"]["name"]))
        replicas = pod.owner["spec"].get("replicas", 1)
        if hpa is not None:
            replicas = max(replicas, hpa["spec"].get("minReplicas", 1))
            if "replicas" in pod.owner["spec"]:
                problems.append(f"{pod.name}: sets replicas although {ident(hpa)} scales it "
                                f"(every apply would reset the HPA's count)")
            for metric in hpa["spec"].get("metrics") or []:
                resource = (metric.get("resource") or {}).get("name")
                if resource and any(resource not in ((c.get("resources") or {}).get("requests") or {})
                                    for c in pod.spec.get("containers") or []):
                    problems.append(f"{ident(hpa)}: scales on {resource} but {pod.name} has a "
                                    f"container without a {resource} request")
        if replicas > 1 and not any(namespace(p) == pod.namespace and
                                    selector_matches(p["spec"].get("selector"), pod.labels)
                                    for p in pdbs):
            problems.append(f"{pod.name}: runs {replicas} pods but no PodDisruptionBudget covers them")
    return problems


# Names of env vars and config keys that hold secrets, and URLs that carry a password.
SECRET_NAME = re.compile(r"(API_?KEYS?|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIALS?|PRIVATE_?KEY)$",
                         re.IGNORECASE)
PASSWORD_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)
PLACEHOLDER = "CHANGE_ME"


def _secret_like(key: str, value: Any) -> bool:
    """A non-empty value under a secret's name, or a URL with a password, at any depth."""
    if value in (None, "", {}, []):
        return False
    if SECRET_NAME.search(key):
        return True
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return any(_secret_like(str(k), v) for k, v in items)
    return bool(PASSWORD_URL.search(str(value)))


def check_no_plaintext_secrets(docs: list[Doc]) -> list[str]:
    """No secret in a ConfigMap (a mesh config's api_keys, a password in a URL), in a
    container's literal env values or in its args: secrets come from Secrets."""
    problems = []
    for cm in by_kind(docs, "ConfigMap"):
        for key, text in object_data(cm).items():
            try:
                parsed = yaml.safe_load(text) if key.endswith((".yaml", ".yml")) else None
            except yaml.YAMLError:
                parsed = None
            if _secret_like(key, parsed if isinstance(parsed, dict) else text):
                problems.append(f"{ident(cm)}: key {key!r} holds a secret in plain text")
    for pod in pod_templates(docs):
        for c in pod.all_containers():
            for var in c.get("env") or []:
                if "value" in var and _secret_like(var["name"], var["value"]):
                    problems.append(f"{pod.name} container {c['name']}: env {var['name']} is a "
                                    f"secret given in plain text (use secretKeyRef)")
            args = [*(c.get("command") or []), *(c.get("args") or [])]
            for i, arg in enumerate(args):
                flag = arg.lstrip("-").replace("-", "_").partition("=")[0]
                if PASSWORD_URL.search(arg) or (arg.startswith("-") and SECRET_NAME.search(flag)
                                                 and (("=" in arg) or i + 1 < len(args))):
                    problems.append(f"{pod.name} container {c['name']}: argument {arg!r} carries "
                                    f"a secret in plain text")
    return problems


def _kustomizations(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("kustomization.yaml"))


def _ignored(path: Path, root: Path) -> bool:
    """Whether root/.gitignore's patterns (the simple ones used there) ignore `path`."""
    ignore = root / ".gitignore"
    lines = [ln.strip() for ln in ignore.read_text().splitlines()] if ignore.is_file() else []
    verdict = False
    for pattern in (ln for ln in lines if ln and not ln.startswith("#")):
        negate = pattern.startswith("!")
        if fnmatch.fnmatch(path.name, pattern.lstrip("!")):
            verdict = not negate
    return verdict


def check_secret_sources(root: Path) -> list[str]:
    """The source tree of the manifests (deploy/k8s) holds no secret value: no Secret
    manifest with data, no secretGenerator literals; generators read *.env files that
    .gitignore keeps out of git, each with a committed .env.example beside it whose values
    are marked CHANGE_ME."""
    problems = []
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret" and \
                    (doc.get("data") or doc.get("stringData")):
                problems.append(f"{path.relative_to(root)}: a Secret with its values committed")
    for kfile in _kustomizations(root):
        k = yaml.safe_load(kfile.read_text()) or {}
        for gen in k.get("secretGenerator") or []:
            where = f"{kfile.relative_to(root)}: secretGenerator {gen.get('name')!r}"
            if gen.get("literals"):
                problems.append(f"{where} has literal values")
            for src in [*(gen.get("envs") or []), *(gen.get("files") or [])]:
                path = kfile.parent / src.rpartition("=")[2]
                if not _ignored(path, root):
                    problems.append(f"{where} reads {src}, which .gitignore does not keep out of git")
                example = path.with_name(path.name + ".example")
                if not example.is_file():
                    problems.append(f"{where}: no {example.name} to make {path.name} from")
                    continue
                for line in example.read_text().splitlines():
                    if line.strip() and not line.startswith("#") and PLACEHOLDER not in line:
                        problems.append(f"{where}: {example.name} has a value not marked "
                                        f"{PLACEHOLDER}: {line.split('=', 1)[0]}")
    return problems
