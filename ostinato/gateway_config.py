"""The gateway's section of the mesh configuration (composed into MeshConfig by
ostinato/config.py, beside the other services' sections in ostinato/service_config.py).
It validates its own fields, with errors that name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ostinato.config_checks import (
    ConfigError,
    check_harmony_pair,
    check_numbers,
    check_reasoning_format,
    check_tenant_names,
    check_tokenizer_spec,
    check_tool_format,
)

UNKNOWN_WINDOW_OUTPUT = 256  # default_output_tokens where context_length is not known


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"  # address the gRPC and HTTP servers bind
    port: int = 50051  # public gRPC port (Gateway service)
    http_port: int = 8080  # OpenAI-compatible HTTP API; 0: a free port, -1: off
    metrics_port: int = 0  # Prometheus /metrics over HTTP (internal); 0: a free port, -1: off
    # the planner's gRPC address; several, comma-separated (planner.ha): the active one's is used
    planner_address: str = "127.0.0.1:50052"
    # API key -> tenant (written to the tenancy data in Redis at start; `ostinato tenants
    # create` generates keys). allow_anonymous: a caller without a key is tenant "default"
    # (the open mode of `ostinato up --no-auth` and `ostinato demo`); off: every RPC and
    # route needs a key.
    api_keys: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool = False  # see api_keys: callers without a key are tenant "default"
    # A call's prompt (all messages and the tools' schemas) beyond this is refused
    # (INVALID_ARGUMENT; HTTP 400 context_length_exceeded). Above what a 128k-token window
    # holds at ~8 characters a token (400,000 refused prompts of ~100k tokens that fit: API
    # review 2026-12-07); the context window refuses what does not fit by tokens.
    max_prompt_chars: int = 1_048_576
    max_messages: int = 1024  # messages per call beyond this are refused
    # A call's max_new_tokens when it names none, cut to what the context window leaves;
    # 0: none of the gateway's own, max_new_tokens_limit (OpenAI's max tokens are an optional
    # bound, and SGLang's OpenAI server given none generates to the window's end: a default
    # of 256 cut frameworks' long tool calls short, API review 2026-12-07), or 256 where
    # context_length is not known (set it: `ostinato up` learns it from its engines).
    default_max_new_tokens: int = 0
    max_new_tokens_limit: int = 16_384  # a call asking for more is refused
    # The served model's context window in tokens (SGLang's context length: prompt and
    # output; its /v1/models max_model_len). A prompt that does not fit, or one with its
    # max_tokens, is refused at once (400 context_length_exceeded); a call naming no max
    # tokens gets default_output_tokens cut to what the window leaves. 0: not known here
    # (`ostinato up` reads it from its first engine; else the engines refuse what does not fit).
    context_length: int = 0
    # The longest prompt the engine takes, where it is shorter than the window allows
    # (SGLang's max_req_input_len: min(context length, KV pool) less a few tokens); a longer
    # one is refused at once, as past the window. 0: none but the window's (`ostinato up`
    # reads it from its first engine's /get_server_info).
    max_input_tokens: int = 0
    call_timeout_s: float = 600.0  # a call's limit, queueing included (a client deadline shortens it)
    # Stopping (SIGTERM: a rollout, a scale-in): how long the requests in flight (gRPC and
    # HTTP, streams included) may finish before the rest are cut (UNAVAILABLE / a stream's
    # error event). Keep it under the platform's (terminationGracePeriodSeconds).
    drain_s: float = 5.0
    # Backpressure: calls running through this gateway past which a new one is refused at
    # once (RESOURCE_EXHAUSTED / HTTP 429 with Retry-After), unless its tenant has fewer in
    # flight than its share of it, by fair-share weight (its tenant record's, else
    # planner.tenant_weights') among the tenants with calls in flight there (the gateway then
    # holds up to twice it); 0: unbounded.
    max_inflight_calls: int = 4096
    # Early start (gateway/early_guess.py): a call without parents whose prompt has at most
    # this many tokens, while the planner's last grant said nothing waited, goes to the
    # worker the planner is guessed to grant as its admission goes out: the planner's round
    # trip overlaps the worker's (guessed wrong, that run is cut, the call runs where
    # granted); 0: off.
    early_start_max_tokens: int = 512
    # Early start only while the planner's last grant is at most this old: past it, other
    # gateways may have queued calls at the planner since (a lone gateway can wait longer).
    early_start_fresh_s: float = 1.0
    # Answer caches (cache/answers.py). A call's CachePolicy (or X-Ostinato-Cache) overrides
    # cache_mode; exact applies to deterministic calls only (temperature 0).
    cache_mode: str = "exact"  # off | exact | semantic
    # cosine similarity a semantic-cache hit needs (a call's CachePolicy may raise it)
    semantic_threshold: float = 0.80
    semantic_cache: bool = True  # load the embedding model at start (about 6 s on a CPU)
    cache_ttl_s: float = 3600.0  # answer-cache entries expire after this
    cache_max_entries_per_tenant: int = 10_000  # answer-cache entries kept per tenant (oldest evicted)
    # auto: Redis 8 vector sets when the server has them, else the in-process index
    # kept in sync through a Redis Stream; local / redis force one (cache/semantic_index.py).
    semantic_index: str = "auto"
    # The served model's tokenizer, for the KV-reference index's token-block hashes: the
    # workers' kv_tokenizer, and the engines' (ostinato/tokenizers.py).
    kv_tokenizer: str = "sim"
    # The served model: its name (GET /v1/models; a request naming another is refused), and
    # how its output writes tool calls (ostinato/tool_formats.py; SGLang's --tool-call-parser).
    # Messages are rendered with the chat template of kv_tokenizer (sim: the sim model's).
    model: str = "sim/llama-3.1-8b"
    tool_call_parser: str = "hermes"  # see model
    # How the model writes its thinking (ostinato/reasoning_formats.py; SGLang's
    # --reasoning-parser): deepseek-r1, qwen3, kimi or gpt-oss (harmony: with the
    # tool_call_parser gpt-oss). Chat answers then carry it apart as
    # reasoning_content (a reasoning item in the Responses API) and tool calls are read from
    # the answer after it. Empty: the model does not think; its output is all answer.
    reasoning_parser: str = ""
    # A request without X-Ostinato-Program that continues an earlier conversation joins its
    # program (cache/conversations.py); the index forgets a conversation idle this long. (A
    # Responses request continuing a stored response by previous_response_id joins it always.)
    attribute_conversations: bool = True
    conversation_ttl_s: float = 900.0  # see attribute_conversations
    # POST /v1/responses keeps each finished response (unless "store": false) this long in
    # Redis, for previous_response_id and GET /v1/responses/<id> (cache/stored_responses.py).
    responses_ttl_s: float = 86_400.0
    # Bytes of stored responses one tenant may keep in Redis (0: no bound); storing one past
    # it removes the tenant's responses nearest their expiry first (cache/stored_responses.py),
    # so that no tenant fills the shared Redis. Every tenant's bound together, with the
    # conversations' (max_conversations_per_tenant x max_conversation_bytes), must fit Redis.
    max_stored_response_bytes_per_tenant: int = 64 * 1024 * 1024
    # Per-tenant bounds on what the Conversations API keeps in Redis (cache/conversation_store.py):
    # at most this many conversations per tenant (a create past it is a 429; delete some or let
    # idle ones expire), each holding at most max_conversation_bytes of item JSON (adding past it
    # is a 400). A tenant's stored conversations thus take at most their product.
    max_conversations_per_tenant: int = 1000
    max_conversation_bytes: int = 1_048_576  # see max_conversations_per_tenant
    # ... and all of a tenant's conversations together at most this many bytes of item JSON
    # (0: no bound; a write past it is a 429): the two above alone let one tenant keep about
    # 1.3 GB (Redis's own cost is about 1.3x the JSON).
    max_conversation_bytes_per_tenant: int = 64 * 1024 * 1024
    # Programs a tenant may open and hold at once (StartProgram, RunProgram, POST
    # /v1/programs) when its record names no max_programs (0: no limit): each is kept by the
    # planner (planner.program_idle_ttl_s) and in Redis, so a tenant that opens them in a loop
    # is bounded (a 429 / RESOURCE_EXHAUSTED). Programs its calls open (a one-call program,
    # a conversation) are bounded by its calls' limits instead.
    max_programs_per_tenant: int = 1000
    # TLS on the gRPC port (the SDK: ostinato.Client(..., tls=...)): both PEM files, or
    # neither for plaintext. The HTTP API stays plaintext (terminate its TLS at a proxy).
    tls_cert_file: str = ""  # This file: the gateway's certificate chain (PEM).
    tls_key_file: str = ""  # the private key of tls_cert_file (PEM)
    # Mutual TLS: the CAs (PEM) that sign the client certificates every caller must present.
    tls_client_ca_file: str = ""  # Empty: no client certificate asked.

    @property
    def default_output_tokens(self) -> int:
        """max_new_tokens of a call naming none, before the context window cuts it: the
        operator's default, else the limit where the window is known; else a small one
        that fits beside a prompt in any window (the engine refuses a prompt and max tokens
        past its window, and SGLang's /generate, given none, writes 128)."""
        if self.default_max_new_tokens:
            return self.default_max_new_tokens
        return self.max_new_tokens_limit if self.context_length else UNKNOWN_WINDOW_OUTPUT

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("gateway.tls_cert_file and gateway.tls_key_file: set both (TLS) or "
                              "neither (plaintext)")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("gateway.tls_client_ca_file: mutual TLS needs gateway.tls_cert_file "
                              "and gateway.tls_key_file")
        check_numbers("gateway", self, positive=(
            "max_prompt_chars", "max_messages", "max_new_tokens_limit",
            "call_timeout_s", "max_conversations_per_tenant", "max_conversation_bytes",
            "early_start_fresh_s"),
            non_negative=("max_inflight_calls", "max_programs_per_tenant",
                          "max_stored_response_bytes_per_tenant",
                          "max_conversation_bytes_per_tenant", "context_length",
                          "max_input_tokens", "drain_s", "default_max_new_tokens",
                          "early_start_max_tokens"))
        if self.default_max_new_tokens > self.max_new_tokens_limit:
            raise ConfigError(f"gateway.default_max_new_tokens: must be at most "
                              f"max_new_tokens_limit ({self.max_new_tokens_limit}), got "
                              f"{self.default_max_new_tokens}")
        short = [tenant for key, tenant in self.api_keys.items() if len(key) < 8]
        if short:
            raise ConfigError(f"gateway.api_keys: keys must be at least 8 characters (the key of "
                              f"tenant {short[0]!r} is shorter)")
        placeholder = [tenant for key, tenant in self.api_keys.items() if _placeholder(key)]
        if placeholder:  # an example's key, published (deploy review 2026-12-05 F5)
            raise ConfigError(f"gateway.api_keys: the key of tenant {placeholder[0]!r} is an "
                              "example's placeholder (CHANGE_ME): set a key of your own "
                              "(`openssl rand -hex 24`)")
        check_tenant_names(self.api_keys.values(), "gateway.api_keys", keyed=True)
        check_tokenizer_spec(self.kv_tokenizer, "gateway.kv_tokenizer")
        check_tool_format(self.tool_call_parser, "gateway.tool_call_parser")
        check_reasoning_format(self.reasoning_parser, "gateway.reasoning_parser")
        check_harmony_pair(self.tool_call_parser, self.reasoning_parser, "gateway.tool_call_parser",
                           "gateway.reasoning_parser")
        if self.conversation_ttl_s <= 0:
            raise ConfigError("gateway.conversation_ttl_s: must be positive")
        if self.responses_ttl_s <= 0:
            raise ConfigError("gateway.responses_ttl_s: must be positive")
        if self.semantic_index not in ("auto", "local", "redis"):
            raise ConfigError(f"gateway.semantic_index: must be auto, local or redis, got "
                              f"{self.semantic_index!r}")
        if self.cache_mode not in ("off", "exact", "semantic"):
            raise ConfigError(f"gateway.cache_mode: must be off, exact or semantic, got "
                              f"{self.cache_mode!r}")
        if not 0.0 < self.semantic_threshold <= 1.0:
            raise ConfigError("gateway.semantic_threshold: must be in (0, 1]")
        if self.cache_ttl_s <= 0 or self.cache_max_entries_per_tenant < 1:
            raise ConfigError("gateway.cache_ttl_s and cache_max_entries_per_tenant: must be positive")


def _placeholder(key: str) -> bool:
    """An example's key left in: CHANGE_ME, change-me, changeme (any case)."""
    flat = key.lower().replace("-", "").replace("_", "")
    return "changeme" in flat
