"""Cross-checks of rendered manifests against the mesh itself: every Ostinato container's
config (the mounted mesh config file plus its env, loaded by ostinato.config, so unknown
OSTINATO_* variables and bad values fail as they would at start), its ports, probes and
the addresses it dials; and the NetworkPolicies: only the gateway reachable from outside
the namespace, every path the config implies open. Each returns a list of problems."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ostinato.config import ConfigError, MeshConfig, load_mesh_config
from tests.deploy.k8s_model import (
    FIELD_PLACEHOLDERS,
    Doc,
    PodTemplate,
    container_env,
    env_sources,
    expand,
    find,
    object_data,
    pod_templates,
    service_selects,
)

SERVICES = ("gateway", "planner", "worker", "sim-engine")
ANY_HOST = ("0.0.0.0", "::", "[::]")
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def host_port(address: str) -> tuple[str, int]:
    """host:port, or a URL (http://h:p/..., tcp://h:p, redis://u:pw@h:p/0), with its port."""
    if "://" not in address:
        address = "tcp://" + address
    parts = urlsplit(address)
    default = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}.get(parts.scheme, 0)
    host = parts.hostname or ""
    return ("*" if "//*:" in address else host), parts.port or default


def flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


@dataclass
class Container:
    pod: PodTemplate
    spec: Doc
    env: dict[str, str]
    service: str = ""  # gateway | planner | worker | sim-engine | sglang
    config: MeshConfig | None = None
    args: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.pod.name} container {self.spec['name']}"

    def has_port(self, number: int) -> bool:
        return any(p["containerPort"] == number for p in self.spec.get("ports") or [])


def _load_config(c: Container, docs: list[Doc], problems: list[str]) -> None:
    args = c.args
    if args[1:2] != ["--config"] or len(args) != 3:
        problems.append(f"{c.where}: args {args} — an Ostinato container takes only "
                        f"`{args[0]} --config FILE`: settings belong in the mesh config or env")
        return
    mount = next((m for m in c.spec.get("volumeMounts") or []
                  if args[2].startswith(m["mountPath"].rstrip("/") + "/")), None)
    volume = next((v for v in c.pod.spec.get("volumes") or []
                   if mount and v["name"] == mount["name"]), None)
    if volume is None or "configMap" not in volume:
        problems.append(f"{c.where}: --config {args[2]} is not in a mounted ConfigMap")
        return
    key = args[2][len(mount["mountPath"].rstrip("/")) + 1:]
    items = {i["path"]: i["key"] for i in volume["configMap"].get("items") or []}
    cm = find(docs, "ConfigMap", volume["configMap"]["name"], c.pod.namespace)
    text = object_data(cm).get(items.get(key, key)) if cm else None
    if text is None:
        problems.append(f"{c.where}: --config {args[2]}: no such key in its ConfigMap")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ostinato.yaml"
        path.write_text(text)
        try:
            c.config = load_mesh_config(path, environ=c.env)
        except ConfigError as exc:
            problems.append(f"{c.where}: the mesh config does not load: {exc}")


def mesh_containers(docs: list[Doc], problems: list[str]) -> list[Container]:
    out = []
    for pod in pod_templates(docs):
        for spec in pod.containers():
            env = container_env(spec, docs, pod.namespace)
            args = [expand(a, env) for a in spec.get("args") or []]
            command = [expand(a, env) for a in spec.get("command") or []]
            c = Container(pod, spec, env, args=[*command, *args])
            if not command and args and args[0] in SERVICES:
                c.service = args[0]
                _load_config(c, docs, problems)
            elif any("sglang.launch_server" in a for a in c.args):
                c.service = "sglang"
            out.append(c)
    return out


@dataclass(frozen=True)
class Edge:
    """A connection the mesh config says a pod makes: src pod -> dst pod on a port."""

    src: PodTemplate
    dst: PodTemplate
    port: int
    why: str


def _dial(docs: list[Doc], containers: list[Container], c: Container, address: str, what: str,
          edges: list[Edge], problems: list[str], want: str | None = None) -> None:
    """`address` (what c dials) names a Service here whose port reaches a container port,
    where (with `want`) that service of the mesh listens."""
    host, port = host_port(address)
    name = host.split(".")[0]
    ns = host.split(".")[1] if host.count(".") >= 1 else c.pod.namespace
    svc = find(docs, "Service", name, ns)
    if svc is None:
        problems.append(f"{c.where}: {what} {address!r}: no Service {name!r} in namespace {ns} "
                        f"(an address outside the cluster comes from a Secret, as in "
                        f"components/external-redis)")
        return
    sport = next((p for p in svc["spec"].get("ports") or [] if p["port"] == port), None)
    if sport is None:
        problems.append(f"{c.where}: {what} {address!r}: Service {name} has no port {port}")
        return
    for dst in pod_templates(docs):
        if dst.namespace != ns or not service_selects(svc["spec"].get("selector") or {}, dst.labels):
            continue
        number = dst.port(sport.get("targetPort", port))
        if number is None:
            continue  # k8s_checks.check_selectors reports it
        edges.append(Edge(c.pod, dst, number, f"{what} {address}"))
        if want is None:
            continue
        served = [s for s in containers if s.pod.owner is dst.owner and s.service == want]
        if not served:
            problems.append(f"{c.where}: {what} {address!r} reaches {dst.name}, which runs no {want}")
        for s in served:
            own = getattr(s.config, want).port if s.config else number
            if own != number:
                problems.append(f"{c.where}: {what} {address!r} reaches port {number} of "
                                f"{dst.name}, but its {want} listens on {own}")


def _probes(c: Container, port: int, problems: list[str]) -> None:
    for probe in ("readinessProbe", "livenessProbe"):
        grpc = (c.spec.get(probe) or {}).get("grpc")
        if grpc is None or c.pod.port(grpc["port"]) != port:
            problems.append(f"{c.where}: {probe} must be a gRPC health probe on port {port}")


def _engine_kv_ports(engine: Container) -> dict[str, int]:
    if engine.service == "sim-engine":
        text = engine.config.sim_engine.kv_events_config if engine.config else ""
    else:
        text = flag(engine.args, "--kv-events-config") or ""
    cfg = json.loads(text) if text else {}
    return {k: host_port(cfg[k])[1] for k in ("endpoint", "replay_endpoint") if k in cfg}


def _check_worker(c: Container, engines: list[Container], problems: list[str]) -> None:
    w = c.config.worker
    host, port = host_port(w.advertise_address or f"{w.host}:{w.port}")
    if host != FIELD_PLACEHOLDERS["status.podIP"] or port != w.port:
        problems.append(f"{c.where}: worker.advertise_address {w.advertise_address!r} must be the "
                        f"pod IP (downward API status.podIP) and worker.port {w.port}")
    replicas = c.pod.owner["spec"].get("replicas", 1)
    if replicas > 1 and env_sources(c.spec).get("OSTINATO_WORKER__WORKER_ID") != "field":
        problems.append(f"{c.where}: {replicas} workers need distinct worker ids "
                        f"(OSTINATO_WORKER__WORKER_ID from metadata.name)")
    if len(engines) != 1:
        problems.append(f"{c.where}: expected one engine container beside the worker, found "
                        f"{len(engines)}")
        return
    engine = engines[0]
    ehost, eport = host_port(w.engine_url)
    engine_port = (engine.config.sim_engine.port if engine.service == "sim-engine" and engine.config
                   else int(flag(engine.args, "--port") or 30000))
    if ehost not in LOOPBACK or eport != engine_port or not engine.has_port(engine_port):
        problems.append(f"{c.where}: worker.engine_url {w.engine_url!r} must be loopback port "
                        f"{engine_port}, where its engine {engine.spec['name']} listens")
    kv = _engine_kv_ports(engine)
    for name, key in (("engine_kv_events", "endpoint"), ("engine_kv_replay", "replay_endpoint")):
        value = getattr(w, name)
        if value and (host_port(value)[0] not in LOOPBACK or host_port(value)[1] != kv.get(key)):
            problems.append(f"{c.where}: worker.{name} {value!r} is not the engine's KV events "
                            f"{key} on loopback (engine: {kv.get(key)})")


def _tokenizer_of(user: Container, model: str, spec: str, docs: list[Doc]) -> bool:
    """Whether `spec` (a gateway's or worker's kv_tokenizer) is `model`'s: hf:MODEL, or
    hf:DIR with an init container of the same pod that runs `fetch-tokenizer MODEL DIR`
    into a volume the user mounts there (deploy review 2026-12-05 F1: the services load
    their tokenizer offline, so a Hub id alone crash-looped them)."""
    if spec == f"hf:{model}":
        return True
    if not spec.startswith("hf:/"):
        return False
    folder = spec[3:]
    for init in user.pod.spec.get("initContainers") or []:
        env = container_env(init, docs, user.pod.namespace)
        args = [expand(a, env) for a in init.get("args") or []]
        if args != ["fetch-tokenizer", model, folder]:
            continue
        mounted = {m["name"] for m in init.get("volumeMounts") or []
                   if folder.startswith(m["mountPath"].rstrip("/") + "/")}
        if mounted & {m["name"] for m in user.spec.get("volumeMounts") or []
                      if folder.startswith(m["mountPath"].rstrip("/") + "/")}:
            return True
    return False


def _check_engine(c: Container, gateway: MeshConfig | None, docs: list[Doc],
                  containers: list[Container], edges: list[Edge], problems: list[str]) -> None:
    if c.service == "sim-engine":
        cfg = c.config.sim_engine
        if not c.has_port(cfg.port) or cfg.host not in ANY_HOST:
            problems.append(f"{c.where}: sim_engine {cfg.host}:{cfg.port} must be a container port "
                            f"bound on all interfaces (the kubelet probes the pod IP)")
        if gateway and (gateway.gateway.model != cfg.model or gateway.gateway.kv_tokenizer != "sim"):
            problems.append(f"{c.where}: the gateway serves {gateway.gateway.model!r} with "
                            f"tokenizer {gateway.gateway.kv_tokenizer!r}, the sim engine {cfg.model!r}")
        return
    port, model = flag(c.args, "--port"), flag(c.args, "--model-path")
    if port is None or not c.has_port(int(port)) or flag(c.args, "--host") not in ANY_HOST:
        problems.append(f"{c.where}: SGLang's --host/--port must be all interfaces and a container port")
    for needed in ("--enable-priority-scheduling", "--enable-metrics"):
        if needed not in c.args:
            problems.append(f"{c.where}: SGLang needs {needed}")
    if gateway and gateway.gateway.model != model:
        problems.append(f"{c.where}: SGLang serves {model!r} but the gateway's model is "
                        f"{gateway.gateway.model!r}")
    for user in (u for u in containers if u.config and u.service in ("gateway", "worker")):
        spec = getattr(user.config, user.service).kv_tokenizer
        if not _tokenizer_of(user, model or "", spec, docs):
            problems.append(f"{user.where}: kv_tokenizer {spec!r} is not SGLang's model "
                            f"{model!r}: hf:{model} itself, or hf:DIR that an init container of "
                            f"the pod fills (`fetch-tokenizer {model} DIR`)")
    if "--enable-trace" in c.args:
        _dial(docs, containers, c, flag(c.args, "--otlp-traces-endpoint") or "", "--otlp-traces-endpoint",
              edges, problems)
    if "nvidia.com/gpu" not in ((c.spec.get("resources") or {}).get("limits") or {}):
        problems.append(f"{c.where}: SGLang requests no nvidia.com/gpu")


def mesh_check(docs: list[Doc]) -> tuple[list[str], list[Edge]]:
    problems: list[str] = []
    edges: list[Edge] = []
    containers = mesh_containers(docs, problems)
    gateways = [c for c in containers if c.service == "gateway" and c.config]
    gateway_cfg = gateways[0].config if gateways else None
    if not gateways:
        problems.append("no gateway container with a loadable config")
    for c in (c for c in containers if c.config):
        cfg = c.config
        if any(e.startswith("otlp") for e in cfg.telemetry.exporters()):
            _dial(docs, containers, c, cfg.telemetry.otlp_endpoint, "telemetry.otlp_endpoint",
                  edges, problems)
        section = {"gateway": cfg.gateway, "planner": cfg.planner, "worker": cfg.worker}.get(c.service)
        if section is not None:
            ports = [section.port, getattr(section, "http_port", -1), getattr(section, "metrics_port", -1)]
            missing = [p for p in ports if p > 0 and not c.has_port(p)]
            if missing:
                problems.append(f"{c.where}: {c.service} listens on ports {[p for p in ports if p > 0]}; "
                                f"the container ports lack {missing}")
            if section.host not in ANY_HOST:
                problems.append(f"{c.where}: {c.service}.host {section.host} is not all interfaces: "
                                f"unreachable from other pods and the kubelet's probes")
            _probes(c, section.port, problems)
            if c.service != "planner":
                _dial(docs, containers, c, section.planner_address, f"{c.service}.planner_address", edges,
                      problems, want="planner")
            redis_host = host_port(cfg.redis.url)[0] if cfg.redis.url else ""
            if env_sources(c.spec).get("OSTINATO_REDIS__URL") == "secret":
                pass  # an external Redis (components/external-redis)
            elif not redis_host:
                problems.append(f"{c.where}: no redis.url: the {c.service} would start an embedded Redis")
            else:
                _dial(docs, containers, c, cfg.redis.url, "redis.url", edges, problems)
            if gateway_cfg and cfg.worker.kv_tokenizer != gateway_cfg.gateway.kv_tokenizer:
                problems.append(f"{c.where}: worker.kv_tokenizer {cfg.worker.kv_tokenizer!r} differs "
                                f"from the gateway's {gateway_cfg.gateway.kv_tokenizer!r}")
        if c.service == "worker":
            engines = [e for e in containers if e.pod is c.pod and e.service in ("sim-engine", "sglang")]
            _check_worker(c, engines, problems)
            for gw in gateways:  # the gateway dials the address each worker registers
                edges.append(Edge(gw.pod, c.pod, cfg.worker.port, "the worker's advertise_address"))
    for c in containers:
        if c.service in ("sim-engine", "sglang") and (c.config or c.service == "sglang"):
            _check_engine(c, gateway_cfg, docs, containers, edges, problems)
    return problems, edges


def check_mesh_config(docs: list[Doc]) -> list[str]:
    """Each Ostinato container's config loads and agrees with its ports, probes, engine
    and the Services it dials; the engines agree with the gateway on the model."""
    return mesh_check(docs)[0]
