"""The NetworkPolicy cross-check: ingress denied by default, only the gateway reachable
from outside the namespace (and Prometheus on ports named `metrics`; the gateway's metrics
port to Prometheus only, and in none of its Services), only the gateway's Service exposed
beyond the cluster, and every connection the mesh config implies admitted
(gateway -> planner, workers -> planner, gateway -> workers, -> redis, -> otel collector).
An evaluator of NetworkPolicy ingress semantics for pods of the rendered templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.deploy.k8s_mesh_checks import mesh_check
from tests.deploy.k8s_model import (
    Doc,
    PodTemplate,
    by_kind,
    find,
    ident,
    namespace,
    pod_templates,
    selector_matches,
    service_selects,
)


def _policy_types(pol: Doc) -> list[str]:
    spec = pol["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _ingress_policies(docs: list[Doc], dst: PodTemplate) -> list[Doc]:
    return [p for p in by_kind(docs, "NetworkPolicy")
            if namespace(p) == dst.namespace and "Ingress" in _policy_types(p)
            and selector_matches(p["spec"].get("podSelector"), dst.labels)]


def _port_matches(rule: Doc, dst: PodTemplate, port: int) -> bool:
    ports = rule.get("ports") or []
    if not ports:
        return True
    for p in ports:
        value = p.get("port")
        if value is None:
            return True
        if isinstance(value, str):
            if value in dst.port_names(port):
                return True
        elif value <= port <= p.get("endPort", value):
            return True
    return False


def _namespace_labels(docs: list[Doc], ns: str) -> Mapping[str, str]:
    doc = find(docs, "Namespace", ns)
    return {**((doc or {}).get("metadata", {}).get("labels") or {}), "kubernetes.io/metadata.name": ns}


def _peer_matches(peer: Doc, src: PodTemplate, dst_ns: str, docs: list[Doc]) -> bool:
    if "ipBlock" in peer:
        return False  # pod addresses are not known offline: never counted as admitting a pod
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], _namespace_labels(docs, src.namespace)):
            return False
    elif src.namespace != dst_ns:
        return False
    return selector_matches(peer.get("podSelector"), src.labels)


def admitted(docs: list[Doc], src: PodTemplate, dst: PodTemplate, port: int) -> bool:
    """Whether NetworkPolicies admit a connection from a pod of `src` to `dst`:`port`."""
    policies = _ingress_policies(docs, dst)
    if not policies:
        return True
    for pol in policies:
        for rule in pol["spec"].get("ingress") or []:
            if _port_matches(rule, dst, port) and (
                    not rule.get("from") or
                    any(_peer_matches(peer, src, dst.namespace, docs) for peer in rule["from"])):
                return True
    return False


def _external_peers(rule: Doc, ns: str) -> list[Any]:
    """The peers of an ingress rule that admit traffic from outside namespace `ns`."""
    peers = rule.get("from")
    if not peers:
        return ["anywhere"]
    out = []
    for peer in peers:
        if "ipBlock" in peer:
            out.append(peer)
        elif "namespaceSelector" in peer:
            sel = peer["namespaceSelector"] or {}
            own = (sel.get("matchLabels") or {}).get("kubernetes.io/metadata.name") == ns
            if not own:
                out.append(peer)
    return out


def _is_gateway(pod: PodTemplate) -> bool:
    return any(not c.get("command") and (c.get("args") or [""])[0] == "gateway"
               for c in pod.containers())


def _metrics_ports(pod: PodTemplate) -> set[int | str]:
    """The pod's ports named `metrics`, by number and by name."""
    numbers = {p["containerPort"] for c in pod.all_containers() for p in c.get("ports") or []
               if p.get("name") == "metrics"}
    return {*numbers, "metrics"} if numbers else set()


def _admits_metrics(pod: PodTemplate, ports: list[dict[str, Any]]) -> bool:
    metrics = _metrics_ports(pod)
    return bool(metrics) and (not ports or any(p.get("port") in metrics for p in ports))


def check_network_policies(docs: list[Doc]) -> list[str]:
    problems = []
    pods = pod_templates(docs)
    for ns in sorted({p.namespace for p in pods}):
        if not any(namespace(p) == ns and not (p["spec"].get("podSelector") or {})
                   and "Ingress" in _policy_types(p) and not p["spec"].get("ingress")
                   for p in by_kind(docs, "NetworkPolicy")):
            problems.append(f"namespace {ns}: no default-deny ingress NetworkPolicy "
                            f"(podSelector {{}}, policyTypes [Ingress], no rules)")
    for pol in by_kind(docs, "NetworkPolicy"):
        if "Ingress" not in _policy_types(pol):
            continue
        selected = [p for p in pods if p.namespace == namespace(pol)
                    and selector_matches(pol["spec"].get("podSelector"), p.labels)]
        for rule in pol["spec"].get("ingress") or []:
            outside = _external_peers(rule, namespace(pol))
            if not outside:
                continue
            scrape = rule.get("from") and all("namespaceSelector" in peer and "ipBlock" not in peer
                                              and (peer["namespaceSelector"] or {}) for peer in outside)
            for pod in selected:
                ports = rule.get("ports") or []
                if _is_gateway(pod):
                    if not scrape and _admits_metrics(pod, ports):
                        problems.append(f"{ident(pol)}: admits {outside} to the gateway's metrics "
                                        f"port (its tenant labels are for Prometheus only)")
                    continue
                metrics_only = ports and all(
                    p.get("port") == "metrics" or
                    (isinstance(p.get("port"), int) and pod.port_names(p["port"]) == {"metrics"})
                    for p in ports)
                if not (scrape and metrics_only):
                    problems.append(f"{ident(pol)}: admits {outside} from outside the namespace "
                                    f"to {pod.name}, which is not the gateway")
    for svc in by_kind(docs, "Service"):
        spec = svc["spec"]
        for pod in (p for p in pods if _is_gateway(p)
                    and service_selects(spec.get("selector") or {}, p.labels)):
            metrics = _metrics_ports(pod)
            if any(p.get("targetPort", p.get("port")) in metrics for p in spec.get("ports") or []):
                problems.append(f"{ident(svc)}: carries the gateway's metrics port beside its "
                                f"public ones (Prometheus scrapes the pods)")
        exposed = spec.get("type") in ("LoadBalancer", "NodePort") or spec.get("externalIPs")
        if exposed and not any(_is_gateway(p) for p in pods
                               if service_selects(spec.get("selector") or {}, p.labels)):
            problems.append(f"{ident(svc)}: exposed beyond the cluster ({spec.get('type')}) "
                            f"but does not select the gateway")
    _, edges = mesh_check(docs)
    for edge in edges:
        if not admitted(docs, edge.src, edge.dst, edge.port):
            problems.append(f"{edge.src.name} -> {edge.dst.name}:{edge.port} ({edge.why}) is "
                            f"denied by the NetworkPolicies")
    return problems
