"""`ostinato tenants`: the operator's view of the tenancy data in Redis (cache/tenant_directory.py).

The Redis is the mesh config's (`redis.url`, `redis.cluster`: a `--config` file, then
OSTINATO_REDIS__URL / OSTINATO_REDIS__CLUSTER), overridden by --redis-url / --cluster.
Exit status: 0 done, 2 refused input (and no Redis named), 1 Redis failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from redis.connection import parse_url
from redis.exceptions import RedisClusterException

from cache.redis_client import FAILURES, connect
from cache.tenancy import UNLIMITED_PROGRAMS, TenantLimits, chatml_system_prefix
from cache.tenant_directory import InvalidTenancy, TenantDirectory
from ostinato.cli_overrides import flag_overrides, load_config
from ostinato.config import RedisConfig


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tenants", help="manage tenants, API keys and shared prefixes in Redis")
    p.add_argument("--redis-url", help="the Redis holding the tenancy data (default: the mesh "
                   "config's redis.url: --config, or OSTINATO_REDIS__URL)")
    p.add_argument("--cluster", action="store_true", default=None,
                   help="the URL names a node of a Redis Cluster (default: redis.cluster, "
                   "OSTINATO_REDIS__CLUSTER)")
    p.add_argument("--config", help="YAML mesh config file (for redis.url and redis.cluster)")
    act = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = act.add_parser("create", help="a new tenant and a generated API key, printed once")
    create.add_argument("tenant")
    update = act.add_parser("update", help="change a tenant's weight or quotas")
    update.add_argument("tenant")
    for cmd, unset in ((create, "default: {}"), (update, "left out: kept")):
        cmd.add_argument("--weight", type=_number_or(DEFAULT_WEIGHT, float, DEFAULT_WEIGHT),
                         help="fair-share weight, or 'default': planner.tenant_weights' weight "
                         "for the tenant, else 1 (" + ("the default" if cmd is create
                                                       else "left out: kept") + ")")
        cmd.add_argument("--rpm", type=int,
                         help=f"calls per minute, 0: no limit ({unset.format(0)})")
        cmd.add_argument("--tpm", type=int, help="prompt + completion tokens per minute, "
                         f"0: no limit ({unset.format(0)})")
        cmd.add_argument("--max-programs", type=_number_or(UNLIMITED, int, UNLIMITED_PROGRAMS),
                         help="programs open at once, 0: the gateways' "
                         "gateway.max_programs_per_tenant, 'unlimited': no limit "
                         f"({unset.format(0)})")
    revoke = act.add_parser("revoke", help="remove a tenant and every key of it")
    revoke.add_argument("tenant")
    add = act.add_parser("add-key", help="give an existing TENANT another API key, one you "
                         "chose (only its SHA-256 is stored)")
    add.add_argument("tenant")
    add.add_argument("api_key")
    rev = act.add_parser("revoke-key", help="revoke an API key")
    rev.add_argument("api_key")
    share = act.add_parser("share", help="declare a prompt prefix shared by every tenant")
    share.add_argument("name")
    text = share.add_mutually_exclusive_group(required=True)
    text.add_argument("--system", help="a system prompt, not empty (matched as the "
                      "conversation's opening)")
    text.add_argument("--text", help="a raw rendered-prompt prefix")
    share.add_argument("--replace", action="store_true",
                       help="change the prefix of a name already declared (else refused)")
    unshare = act.add_parser("unshare", help="withdraw a shared prefix")
    unshare.add_argument("name")
    act.add_parser("list", help="tenants, number of keys, shared prefixes")


DEFAULT_WEIGHT = "default"  # --weight default: the record names no weight
UNLIMITED = "unlimited"  # --max-programs unlimited: the record's UNLIMITED_PROGRAMS


def _number_or(word: str, number: Callable[[str], float | int], means: object
               ) -> Callable[[str], object]:
    """An argparse type: a number, or `word`, which reads as `means`."""
    def read(text: str) -> object:
        if text == word:
            return means
        try:
            return number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number or {word!r}, got {text!r}") from None
    return read


def _given(args: argparse.Namespace) -> dict[str, float | int | None]:
    """The limits given on the command line; a weight of 'default' is None (the record
    names no weight)."""
    given = {name: value for name, value in (
        ("weight", args.weight), ("rpm", args.rpm), ("tpm", args.tpm),
        ("max_programs", args.max_programs)) if value is not None}
    if given.get("weight") == DEFAULT_WEIGHT:
        given["weight"] = None
    return given


def _limits(args: argparse.Namespace) -> TenantLimits:
    try:
        return TenantLimits(**_given(args))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidTenancy(str(exc)) from None


def _describe(limits: TenantLimits) -> str:
    def limit(n: int) -> str:
        return str(n) if n else "unlimited"
    weight = ("unset (from planner.tenant_weights, else 1)" if limits.weight is None
              else f"{limits.weight:g}")
    return (f"weight {weight}, rpm {limit(limits.rpm)}, tpm {limit(limits.tpm)}, "
            f"max programs {_programs(limits.max_programs)}")


def _programs(n: int) -> str:
    return UNLIMITED if n == UNLIMITED_PROGRAMS else str(n or "gateway.max_programs_per_tenant")


def _redis(args: argparse.Namespace) -> RedisConfig:
    """The Redis to manage: --redis-url / --cluster over the mesh config's `redis` section
    (a ConfigError, exit 2 in ostinato/cli.py, for a bad one there)."""
    if args.redis_url is not None:
        try:
            parse_url(args.redis_url)
        except ValueError as exc:  # not a redis:// URL
            raise InvalidTenancy(f"--redis-url {args.redis_url!r}: {exc}") from None
    cfg = load_config(args, flag_overrides(args, "redis", {"redis_url": "url",
                                                           "cluster": "cluster"})).redis
    if not cfg.url:
        raise InvalidTenancy("no Redis named: pass --redis-url, or set OSTINATO_REDIS__URL "
                             "(or redis.url in the --config file)")
    return cfg


def _share_prefix(args: argparse.Namespace) -> str:
    """The prefix `share` declares: --system's ChatML opening, or --text as it is."""
    if args.system is None:
        return str(args.text)
    if not args.system.strip():
        raise InvalidTenancy("--system: the system prompt is empty (a shared prefix needs text)")
    return chatml_system_prefix(args.system)


async def _act(directory: TenantDirectory, args: argparse.Namespace) -> None:
    """The action, its outcome printed; refused input raises InvalidTenancy."""
    if args.action == "create":
        api_key = await directory.create_tenant(args.tenant, _limits(args))
        print(f"tenant {args.tenant} created. Its API key (shown only now; only its SHA-256 "
              f"is stored):\n{api_key}")
    elif args.action == "update":
        changes = _given(args)  # a weight None is taken out of the record
        if not changes:
            raise InvalidTenancy("nothing to update: give --weight, --rpm, --tpm or --max-programs")
        print(f"tenant {args.tenant}: {_describe(await directory.update_tenant(args.tenant, **changes))}")
    elif args.action == "revoke":
        keys = await directory.revoke_tenant(args.tenant)
        print(f"tenant {args.tenant} revoked ({keys} key(s) removed)")
    elif args.action == "add-key":
        if await directory.add_key(args.tenant, args.api_key):
            print(f"key added for tenant {args.tenant}")
        else:
            print(f"tenant {args.tenant} already has this key (nothing changed)")
    elif args.action == "revoke-key":
        if not await directory.revoke_key(args.api_key):
            raise InvalidTenancy("no such key")
        print("revoked")
    elif args.action == "share":
        prefix = _share_prefix(args)
        replaced = await directory.declare_shared(args.name, prefix, args.replace)
        print(f"shared prefix {args.name!r} {'replaced' if replaced else 'declared'} "
              f"({len(prefix.encode())} bytes)")
    elif args.action == "unshare":
        if not await directory.remove_shared(args.name):
            raise InvalidTenancy(f"no shared prefix {args.name!r}")
        print("withdrawn")
    else:
        await _list(directory)


async def _list(directory: TenantDirectory) -> None:
    snap = await directory.load()
    keys_of = {t: sum(1 for v in snap.keys.values() if v == t) for t in snap.tenants}
    for tenant in sorted(snap.tenants):
        print(f"tenant {tenant}: {keys_of[tenant]} key(s), {_describe(snap.limits_of(tenant))}")
    for name, prefix in sorted(snap.shared_prefixes.items()):
        print(f"shared {name}: {len(prefix.encode())} bytes, {prefix[:60]!r}")
    if not snap.tenants and not snap.shared_prefixes:
        print("no tenants and no shared prefixes (create one: ostinato tenants "
              "create NAME)", file=sys.stderr)


async def _run(args: argparse.Namespace) -> int:
    """0 done, 2 refused input, 1 Redis failed (refused the connection, is no cluster node
    for --cluster, timed out, answered an error)."""
    try:
        cfg = _redis(args)  # (a ConfigError goes to ostinato/cli.py: exit 2)
    except InvalidTenancy as exc:
        print(f"ostinato tenants: {exc}", file=sys.stderr)
        return 2
    try:
        client = connect(cfg.url, cluster=cfg.cluster, timeout_s=2.0)
    except (ValueError, RedisClusterException) as exc:  # a URL the cluster client refuses (/1)
        print(f"ostinato tenants: redis URL {cfg.url!r}: {exc}", file=sys.stderr)
        return 2
    try:
        await _act(TenantDirectory(client, timeout_s=2.0), args)
        return 0
    except InvalidTenancy as exc:
        print(f"ostinato tenants: {exc}", file=sys.stderr)
        return 2
    except FAILURES as exc:  # (a cluster client's RedisClusterException is no RedisError)
        print(f"ostinato tenants: redis error: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
