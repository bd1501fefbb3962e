"""Reading rendered Kubernetes manifests (`kubectl kustomize` output) for the cross-checks in
k8s_checks.py and k8s_mesh_checks.py: objects by kind, pod templates, label selectors,
container ports and environments as the kubelet would resolve them."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

Doc = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
# What `$(VAR)` expands to for fields only a running pod has.
FIELD_PLACEHOLDERS = {"status.podIP": "10.0.0.7", "metadata.name": "pod-0",
                      "metadata.namespace": "ostinato", "spec.nodeName": "node-0"}


def load_docs(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def dump_docs(docs: Iterable[Doc]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def ident(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def namespace(doc: Doc) -> str:
    return doc.get("metadata", {}).get("namespace", "default")


def by_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def find(docs: Iterable[Doc], kind: str, name: str, ns: str | None = None) -> Doc | None:
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name and \
                (ns is None or namespace(d) == ns):
            return d
    return None


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels / matchExpressions); an empty one matches everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def service_selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's plain selector map (a non-empty one)."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class PodTemplate:
    owner: Doc  # the workload
    labels: Mapping[str, str]
    spec: Doc

    @property
    def name(self) -> str:
        return ident(self.owner)

    @property
    def namespace(self) -> str:
        return namespace(self.owner)

    def containers(self) -> list[Doc]:
        """Long-running containers: the regular ones and sidecars (restartPolicy Always)."""
        sidecars = [c for c in self.spec.get("initContainers") or []
                    if c.get("restartPolicy") == "Always"]
        return [*(self.spec.get("containers") or []), *sidecars]

    def all_containers(self) -> list[Doc]:
        return [*(self.spec.get("initContainers") or []), *(self.spec.get("containers") or [])]

    def port(self, name_or_number: str | int) -> int | None:
        """The containerPort a Service targetPort or probe port means in this pod."""
        for c in self.all_containers():
            for p in c.get("ports") or []:
                if name_or_number in (p.get("name"), p["containerPort"]):
                    return int(p["containerPort"])
        return None

    def port_names(self, number: int) -> set[str]:
        return {p["name"] for c in self.all_containers() for p in c.get("ports") or []
                if p["containerPort"] == number and p.get("name")}


def pod_templates(docs: Iterable[Doc]) -> list[PodTemplate]:
    out = []
    for d in docs:
        if d.get("kind") in WORKLOAD_KINDS:
            tpl = d.get("spec", {}).get("template", {})
            out.append(PodTemplate(d, tpl.get("metadata", {}).get("labels") or {},
                                   tpl.get("spec") or {}))
    return out


def volume_claim_names(pod: PodTemplate) -> set[str]:
    return {t["metadata"]["name"] for t in pod.owner["spec"].get("volumeClaimTemplates") or []}


def object_data(doc: Doc) -> dict[str, str]:
    """A ConfigMap's or Secret's values as text (Secret data decoded)."""
    out = {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
    if doc.get("kind") == "Secret":
        for k, v in (doc.get("data") or {}).items():
            out[k] = base64.b64decode(v).decode("utf-8", "replace")
    else:
        out.update({k: str(v) for k, v in (doc.get("data") or {}).items()})
        out.update({k: "<binary>" for k in doc.get("binaryData") or {}})
    return out


_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values, command and args (unknown vars stay)."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def container_env(container: Doc, docs: list[Doc], ns: str) -> dict[str, str]:
    """The environment the kubelet gives a container: envFrom first, then env in order,
    values from ConfigMaps, Secrets and the downward API (placeholders for a pod's own
    fields), $(VAR) references expanded. Missing references are left out (k8s_checks'
    check_references reports them)."""
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in src and (obj := find(docs, kind, src[key]["name"], ns)) is not None:
                env.update({src.get("prefix", "") + k: v for k, v in object_data(obj).items()})
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
            continue
        ref = var.get("valueFrom") or {}
        value = None
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in ref and (obj := find(docs, kind, ref[key]["name"], ns)) is not None:
                value = object_data(obj).get(ref[key]["key"])
        if "fieldRef" in ref:
            value = FIELD_PLACEHOLDERS.get(ref["fieldRef"]["fieldPath"], "<field>")
        if "resourceFieldRef" in ref:
            value = "1"
        if value is not None:
            env[var["name"]] = value
    return env


def env_sources(container: Doc) -> dict[str, str]:
    """Where each env var of a container comes from: value, secret, configmap or field."""
    out: dict[str, str] = {}
    for var in container.get("env") or []:
        ref = var.get("valueFrom") or {}
        out[var["name"]] = ("value" if "value" in var else "secret" if "secretKeyRef" in ref
                            else "configmap" if "configMapKeyRef" in ref else "field")
    return out
