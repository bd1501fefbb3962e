"""`ostinato tenants`: the operator's view of the tenancy data in Redis (cache/tenant_directory.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import redis.asyncio as aioredis

from cache.redis_client import connect
from cache.tenancy import TenantLimits, chatml_system_prefix
from cache.tenant_directory import InvalidTenancy, TenantDirectory


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tenants", help="manage tenants, API keys and shared prefixes in Redis")
    p.add_argument("--redis-url", required=True)
    p.add_argument("--cluster", action="store_true",
                   help="--redis-url names a node of a Redis Cluster (as redis.cluster)")
    act = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = act.add_parser("create", help="a new tenant and a generated API key, printed once")
    create.add_argument("tenant")
    update = act.add_parser("update", help="change a tenant's weight or quotas")
    update.add_argument("tenant")
    for cmd, unset in ((create, "default: {}"), (update, "left out: kept")):
        cmd.add_argument("--weight", type=float,
                         help=f"fair-share weight ({unset.format(1)})")
        cmd.add_argument("--rpm", type=int,
                         help=f"calls per minute, 0: no limit ({unset.format(0)})")
        cmd.add_argument("--tpm", type=int, help="prompt + completion tokens per minute, "
                         f"0: no limit ({unset.format(0)})")
        cmd.add_argument("--max-programs", type=int,
                         help=f"programs open at once, 0: no limit ({unset.format(0)})")
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
    text.add_argument("--system", help="a system prompt (matched as the conversation's opening)")
    text.add_argument("--text", help="a raw rendered-prompt prefix")
    share.add_argument("--replace", action="store_true",
                       help="change the prefix of a name already declared (else refused)")
    unshare = act.add_parser("unshare", help="withdraw a shared prefix")
    unshare.add_argument("name")
    act.add_parser("list", help="tenants, number of keys, shared prefixes")


def _changes(args: argparse.Namespace) -> dict[str, float | int | None]:
    return {"weight": args.weight, "rpm": args.rpm, "tpm": args.tpm,
            "max_programs": args.max_programs}


def _limits(args: argparse.Namespace) -> TenantLimits:
    try:
        return TenantLimits(**{k: v for k, v in _changes(args).items() if v is not None})  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidTenancy(str(exc)) from None


def _describe(limits: TenantLimits) -> str:
    def limit(n: int) -> str:
        return str(n) if n else "unlimited"
    return (f"weight {limits.weight:g}, rpm {limit(limits.rpm)}, tpm {limit(limits.tpm)}, "
            f"max programs {limit(limits.max_programs)}")


async def _run(args: argparse.Namespace) -> int:
    try:
        client = connect(args.redis_url, cluster=args.cluster, timeout_s=2.0)
    except ValueError as exc:  # not a redis:// URL
        print(f"ostinato tenants: --redis-url {args.redis_url!r}: {exc}", file=sys.stderr)
        return 2
    directory = TenantDirectory(client, timeout_s=2.0)
    try:
        if args.action == "create":
            api_key = await directory.create_tenant(args.tenant, _limits(args))
            print(f"tenant {args.tenant} created. Its API key (shown only now; only its SHA-256 "
                  f"is stored):\n{api_key}")
        elif args.action == "update":
            changes = {k: v for k, v in _changes(args).items() if v is not None}
            if not changes:
                raise InvalidTenancy("nothing to update: give --weight, --rpm, --tpm or --max-programs")
            print(f"tenant {args.tenant}: {_describe(await directory.update_tenant(args.tenant, **changes))}")
        elif args.action == "revoke":
            keys = await directory.revoke_tenant(args.tenant)
            print(f"tenant {args.tenant} revoked ({keys} key(s) removed)")
        elif args.action == "add-key":
            await directory.add_key(args.tenant, args.api_key)
            print(f"key added for tenant {args.tenant}")
        elif args.action == "revoke-key":
            if not await directory.revoke_key(args.api_key):
                raise InvalidTenancy("no such key")
            print("revoked")
        elif args.action == "share":
            prefix = chatml_system_prefix(args.system) if args.system is not None else args.text
            replaced = await directory.declare_shared(args.name, prefix, args.replace)
            print(f"shared prefix {args.name!r} {'replaced' if replaced else 'declared'} "
                  f"({len(prefix.encode())} bytes)")
        elif args.action == "unshare":
            if not await directory.remove_shared(args.name):
                raise InvalidTenancy(f"no shared prefix {args.name!r}")
            print("withdrawn")
        else:
            snap = await directory.load()
            keys_of = {t: sum(1 for v in snap.keys.values() if v == t) for t in snap.tenants}
            for tenant in sorted(snap.tenants):
                print(f"tenant {tenant}: {keys_of[tenant]} key(s), "
                      f"{_describe(snap.limits_of(tenant))}")
            for name, prefix in sorted(snap.shared_prefixes.items()):
                print(f"shared {name}: {len(prefix.encode())} bytes, {prefix[:60]!r}")
            if not snap.tenants and not snap.shared_prefixes:
                print("no tenants and no shared prefixes (create one: ostinato tenants "
                      "create NAME)", file=sys.stderr)
        return 0
    except InvalidTenancy as exc:
        print(f"ostinato tenants: {exc}", file=sys.stderr)
        return 2
    except (aioredis.RedisError, OSError) as exc:
        print(f"ostinato tenants: redis error: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
