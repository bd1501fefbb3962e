"""The one Redis key layout of Ostinato.

Every key starts with "ost:". Keys that must live together (a program and its calls)
share a Redis Cluster hash tag in braces, so multi-key operations work on a cluster.
Tenant-scoped keys carry the tenant inside the hash tag.

    ost:{prog:<program_id>}:meta      hash   program record (tenant, class, deadline, state, ...)
    ost:{prog:<program_id>}:calls     hash   call_id -> JSON call record
    ost:programs:<tenant>             zset   program ids of a tenant, scored by creation time
    ost:tracing:program_ends          stream programs ended through a gateway that holds no span
                                             of them, with their summaries: the replica
                                             that does ends it (tracing/program_ends.py);
                                             capped
    ost:recovery:open                 zset   programs not yet ended (planner recovery)
    ost:planner:learned               string JSON per-class output lengths and program sizes

Answer caches (cache/answers.py). The tenant's namespace (its name and generation,
'acme#5f..': ostinato/program_ids.py) is inside the hash tag: a tenant's entries live in
one slot, no key of one tenant can be built from another's request, and a tenant revoked
and created again under the same name reaches none of the old one's answers (not even one
stored after the revoke by a call still running then).

    ost:{t:<ns>}:exact:<sha256>       string JSON answer, fixed TTL
    ost:{t:<ns>}:sem:<entry_id>       hash   vec (float32 bytes), context, text, answer; fixed TTL
    ost:{t:<ns>}:sem:index            zset   entry ids by insertion time (size bound, eviction,
                                             expiry sweep); TTL renewed on add
    ost:{t:<ns>}:sem:vs:<ctx32>       vset   Redis 8 vector set of the entries under one context
                                             (cache/server_index.py), TTL renewed on add
    ost:sem:tenants                   set    namespaces with semantic entries (index rebuild,
                                             expiry sweep)
    ost:sem:stream                    stream add/del of semantic entries (replica index sync)

KV-reference index (cache/kv_index.py). Hashes are salted with the tenant (or the shared
salt of a declared shared prefix), so the key itself need not name the tenant.

    ost:kv:{w:<worker_id>}:blocks     zset   block hash -> last stored (unix s); TTL by heartbeat
    ost:kv:{w:<worker_id>}:changes    stream the key's changes, in order (the planner's copy,
                                             cache/kv_mirror.py); capped, TTL by heartbeat

Conversations (cache/conversations.py): which program a headerless request continues.
Idle TTL, renewed when a conversation is extended; the tenant is in the hash tag.

    ost:{t:<tenant>}:conv:<sha256>    string JSON {program_id, call_id, thread_id}: the call
                                             whose messages + answer hash to <sha256>
    ost:{t:<tenant>}:conv:kids:<call> string how many requests have extended that call

Stored responses (cache/stored_responses.py): what POST /v1/responses answered with
`store` on, for `previous_response_id` and GET/DELETE /v1/responses/<id>. Fixed TTL; the
tenant's namespace is in the hash tag (another tenant's id names no key of the caller's,
and a tenant revoked and created again reaches none of the old one's).

    ost:{t:<ns>}:resp:<resp_id>       string JSON {input: the input items it ran on, response:
                                             the object, call: {program_id, call_id,
                                             thread_id}, chain: ids it continues, oldest first}
    ost:{t:<ns>}:resps                zset   resp_id -> its expiry (µs): the tenant's bound
    ost:{t:<ns>}:resps:bytes          hash   resp_id -> bytes it counts; _total: their sum

Conversations (cache/conversation_store.py), OpenAI's Conversations API: a conversation
object and its items in order. TTL renewed by every read and write; the tenant's namespace
in the hash tag.

    ost:{t:<ns>}:cv:<conv_id>         string JSON conversation object {id, created_at, metadata}
    ost:{t:<ns>}:cv:<conv_id>:ids     list   its item ids, oldest first
    ost:{t:<ns>}:cv:<conv_id>:items   hash   item id -> JSON item
    ost:{t:<ns>}:cvs                  set    the tenant's conversation ids (its bound)
    ost:{t:<ns>}:cvs:bytes            hash   conv_id -> bytes of items it holds; _total: sum

Tenancy (cache/tenancy.py): operator data, read by every gateway.

    ost:tenancy:tenants               hash   tenant -> JSON {weight, rpm, tpm, max_programs, created,
                                             generation}
    ost:tenancy:keys                  hash   sha256(API key) -> tenant (keys never stored)
    ost:tenancy:shared                hash   name -> declared shared prompt prefix
    ost:tenancy:revoked               hash   sha256(API key) -> tenant: keys revoked with
                                             `ostinato tenants`, which a gateway's configured
                                             keys (gateway.api_keys) do not bring back

Quotas (cache/quotas.py): per tenant, GCRA theoretical arrival times (seconds, Redis clock),
expiring when the bucket is full again; one hash tag so one script updates both.

    ost:{t:<tenant>}:quota:rpm        string calls bucket
    ost:{t:<tenant>}:quota:tpm        string tokens bucket

Planner high availability (planner/ha.py, planner/fencing.py). The lease and its token
counter share one hash tag (one script acquires the lease and takes a token). Every write of
the planner store checks a fence kept in the slot it writes: the highest lease token that
wrote there, so a deposed planner's late writes are refused.

    ost:{planner}:lease               string the active planner's id, expiring (PX) with the lease
    ost:{planner}:epoch               string lease tokens handed out so far (INCR per acquisition)
    ost:fence:{<tag>}                 string the highest token that wrote keys of hash tag <tag>
                                             (a key without a tag: <tag> is the whole key)
"""

from __future__ import annotations

PREFIX = "ost"


def program_meta(program_id: str) -> str:
    return f"{PREFIX}:{{prog:{program_id}}}:meta"


def program_calls(program_id: str) -> str:
    return f"{PREFIX}:{{prog:{program_id}}}:calls"


def tenant_programs(tenant: str) -> str:
    return f"{PREFIX}:programs:{tenant}"


def open_programs() -> str:
    return f"{PREFIX}:recovery:open"


def planner_learned() -> str:
    return f"{PREFIX}:planner:learned"


def exact_entry(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:exact:{digest}"


def semantic_entry(tenant: str, entry_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:sem:{entry_id}"


def semantic_index(tenant: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:sem:index"


def semantic_vector_set(tenant: str, context_tag: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:sem:vs:{context_tag}"


def tenant_data_pattern(tenant: str) -> str:
    """A SCAN pattern for every key of the tenant's own data (caches, conversations, quota
    buckets), of every generation: the answer caches are keyed by the tenant's namespace
    ('acme#5f..', ostinato/program_ids.py), the rest by its name ('acme'), so the hash tag
    is `t:acme` or `t:acme#<generation>` (a slot each). Tenant names have no glob
    characters (cache/tenant_directory.py check_tenant), nor '#'."""
    return f"{PREFIX}:{{t:{tenant}[}}#]*"


def semantic_tenants() -> str:
    return f"{PREFIX}:sem:tenants"


def semantic_stream() -> str:
    return f"{PREFIX}:sem:stream"


def program_ends() -> str:
    return f"{PREFIX}:tracing:program_ends"


def kv_blocks(worker_id: str) -> str:
    return f"{PREFIX}:kv:{{w:{worker_id}}}:blocks"


def kv_changes(worker_id: str) -> str:
    return f"{PREFIX}:kv:{{w:{worker_id}}}:changes"


def tenancy_tenants() -> str:
    return f"{PREFIX}:tenancy:tenants"


def tenancy_keys() -> str:
    return f"{PREFIX}:tenancy:keys"


def tenancy_shared() -> str:
    return f"{PREFIX}:tenancy:shared"


def tenancy_revoked() -> str:
    return f"{PREFIX}:tenancy:revoked"


def tenancy_version() -> str:
    """Bumped by every change to the tenancy data: gateways poll it, and reload on a change."""
    return f"{PREFIX}:tenancy:version"


def conversation(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:conv:{digest}"


def conversation_children(tenant: str, program_id: str, call_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:conv:kids:{program_id}:{call_id}"


def stored_response(tenant: str, response_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:resp:{response_id}"


def stored_responses_index(tenant: str) -> str:
    """The tenant's stored response ids by expiry (its bound, cache/stored_responses.py)."""
    return f"{PREFIX}:{{t:{tenant}}}:resps"


def stored_responses_sizes(tenant: str) -> str:
    """The bytes each of the tenant's stored responses counts, and their sum."""
    return f"{PREFIX}:{{t:{tenant}}}:resps:bytes"


def stored_conversation(tenant: str, conversation_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:cv:{conversation_id}"


def conversation_item_ids(tenant: str, conversation_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:cv:{conversation_id}:ids"


def conversation_items(tenant: str, conversation_id: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:cv:{conversation_id}:items"


def tenant_conversations(tenant: str) -> str:
    """The set of the tenant's conversation ids (its per-tenant cap, cache/conversation_store.py)."""
    return f"{PREFIX}:{{t:{tenant}}}:cvs"


def tenant_conversation_bytes(tenant: str) -> str:
    """Bytes of item JSON each of the tenant's conversations holds, and their sum (_total)."""
    return f"{PREFIX}:{{t:{tenant}}}:cvs:bytes"


def quota_calls(tenant: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:quota:rpm"


def quota_tokens(tenant: str) -> str:
    return f"{PREFIX}:{{t:{tenant}}}:quota:tpm"


def planner_lease() -> str:
    return f"{PREFIX}:{{planner}}:lease"


def planner_epoch() -> str:
    return f"{PREFIX}:{{planner}}:epoch"


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text in the first {...} when not empty, else the key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def fence(key: str) -> str:
    """The fence of the slot `key` lives in (same hash tag, so one script reads both)."""
    tag = hash_tag(key)
    if "}" in tag:  # a key without a usable tag but with braces: no name shares its slot
        raise ValueError(f"no fence can share the slot of {key!r}")
    return f"{PREFIX}:fence:{{{tag}}}"
