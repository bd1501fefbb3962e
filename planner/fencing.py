"""Fenced writes: every Redis write of the planner store carries its lease token, checked in
Redis, in the same script as the write.

Redis Cluster runs a script only on keys of one slot, and the planner writes many slots (a
program's records under `{prog:ID}`, the open-program set, a tenant's program index). So
the token is not compared with the lease's counter (another slot) but with a fence kept in
each slot written (`cache.keys.fence`): the highest token that has written there. A write
with a smaller token is refused; a larger one raises the fence. A planner that takes over
raises the fences of everything it loads (`claim`) before it reads it, so from then on its
predecessor can change none of it: the fencing-token scheme with the storage keeping the
highest token seen, one fence per slot.

Without a token (one planner, no HA) the same script writes unchecked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from cache import keys
from cache.redis_client import AsyncClient

# KEYS[1]: the fence; KEYS[2..]: the keys of the operations. ARGV[1]: the token ("" for
# none); ARGV[2]: JSON [[command, key index, arg...], ...]. Returns {1, results...}, or {0}
# when a larger token has written this slot.
_SCRIPT = """
if ARGV[1] ~= '' then
  local token = tonumber(ARGV[1])
  local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
  if fence > token then return {0} end
  if fence < token then redis.call('SET', KEYS[1], ARGV[1]) end
end
local out = {1}
for _, op in ipairs(cjson.decode(ARGV[2])) do
  out[#out + 1] = redis.call(op[1], KEYS[op[2]], unpack(op, 3))
end
return out
"""


class FencedOut(Exception):
    """A write was refused: a planner with a newer lease token has written there."""


@dataclass
class Batch:
    """Operations on keys of one slot, run as one fenced script."""

    fence: str
    keys: list[str] = field(default_factory=list)
    ops: list[list[object]] = field(default_factory=list)

    def op(self, command: str, key: str, *args: object) -> None:
        if keys.fence(key) != self.fence:
            raise ValueError(f"{key!r} is not in the slot of {self.fence!r}")
        if key not in self.keys:
            self.keys.append(key)
        self.ops.append([command, self.keys.index(key) + 2, *(str(a) for a in args)])


class Batches:
    """Operations grouped by slot, in the order their slots were first written."""

    def __init__(self) -> None:
        self.by_fence: dict[str, Batch] = {}

    def op(self, command: str, key: str, *args: object) -> None:
        fence = keys.fence(key)
        batch = self.by_fence.get(fence)
        if batch is None:
            batch = self.by_fence[fence] = Batch(fence)
        batch.op(command, key, *args)


class Fencing:
    """Runs batches as the fenced script, many in one pipeline."""

    def __init__(self, client: AsyncClient) -> None:
        self._redis = client
        self._sha = ""
        self.token: int | None = None

    async def _load(self) -> None:
        self._sha = await self._redis.script_load(_SCRIPT)  # on a cluster: every primary

    async def run(self, batches: Sequence[Batch]) -> list[list[Any]]:
        """Each batch's results; FencedOut if any was refused."""
        if not batches:
            return []
        if not self._sha:
            await self._load()
        try:
            replies = await self._execute(batches)
        except NoScriptError:  # Redis restarted (or a node joined) since the script was loaded
            await self._load()
            replies = await self._execute(batches)
        if any(reply[0] == 0 for reply in replies):
            refused = [b.fence for b, r in zip(batches, replies, strict=True) if r[0] == 0]
            raise FencedOut(f"token {self.token} refused at {', '.join(refused[:3])}: "
                            "another planner took over")
        return [list(reply[1:]) for reply in replies]

    async def _execute(self, batches: Sequence[Batch]) -> list[list[object]]:
        token = "" if self.token is None else str(self.token)
        pipe = self._redis.pipeline(transaction=False)
        for b in batches:
            # by name: a cluster pipeline blocks its evalsha method, not the command (one slot)
            pipe.execute_command("EVALSHA", self._sha, 1 + len(b.keys), b.fence, *b.keys, token,
                                 json.dumps(b.ops))
        return list(await pipe.execute())
