"""`ostinato tenants`: the operator's view of the tenancy data in Redis (cache/tenant_directory.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import redis.asyncio as aioredis

from cache.tenancy import chatml_system_prefix
from cache.tenant_directory import InvalidTenancy, TenantDirectory


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tenants", help="manage tenants, API keys and shared prefixes in Redis")
    p.add_argument("--redis-url", required=True)
    act = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = act.add_parser("add-key", help="give TENANT an API key (only its SHA-256 is stored)")
    add.add_argument("tenant")
    add.add_argument("api_key")
    rev = act.add_parser("revoke-key", help="revoke an API key")
    rev.add_argument("api_key")
    share = act.add_parser("share", help="declare a prompt prefix shared by every tenant")
    share.add_argument("name")
    text = share.add_mutually_exclusive_group(required=True)
    text.add_argument("--system", help="a system prompt (matched as the conversation's opening)")
    text.add_argument("--text", help="a raw rendered-prompt prefix")
    unshare = act.add_parser("unshare", help="withdraw a shared prefix")
    unshare.add_argument("name")
    act.add_parser("list", help="tenants, number of keys, shared prefixes")


async def _run(args: argparse.Namespace) -> int:
    client = aioredis.from_url(args.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    directory = TenantDirectory(client, timeout_s=2.0)
    try:
        if args.action == "add-key":
            await directory.add_key(args.tenant, args.api_key)
            print(f"key added for tenant {args.tenant}")
        elif args.action == "revoke-key":
            print("revoked" if await directory.revoke_key(args.api_key) else "no such key")
        elif args.action == "share":
            prefix = chatml_system_prefix(args.system) if args.system is not None else args.text
            await directory.declare_shared(args.name, prefix)
            print(f"shared prefix {args.name!r} declared ({len(prefix.encode())} bytes)")
        elif args.action == "unshare":
            print("withdrawn" if await directory.remove_shared(args.name) else "no such prefix")
        else:
            snap = await directory.load()
            keys_of = {t: sum(1 for v in snap.keys.values() if v == t) for t in snap.tenants}
            for tenant in sorted(snap.tenants):
                print(f"tenant {tenant}: {keys_of[tenant]} key(s)")
            for name, prefix in sorted(snap.shared_prefixes.items()):
                print(f"shared {name}: {len(prefix.encode())} bytes, {prefix[:60]!r}")
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
