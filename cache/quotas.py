"""Per-tenant rate and token quotas, enforced atomically in Redis (GCRA, one Lua script).

Each quota is a generic cell rate: a limit of L per minute lets one unit through every
60/L s, with a burst of up to L at once. The script keeps each bucket's theoretical arrival
time (TAT) under the Redis server's clock, so every gateway replica shares one view and no
two requests can both take the last unit. A call is admitted when its calls bucket has room
for 1 and its tokens bucket for its prompt tokens and its reserved completion tokens
(gateway/quota_meter.py: its max_new_tokens, cut to what the tpm leaves); when it ends the
unused part is given back (`refund`) or the excess charged (`charge`), which may leave the
bucket in debt: the tenant's next calls wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cache.keys import quota_calls, quota_tokens
from cache.outage import outage_of
from cache.redis_client import AsyncClient
from cache.tenancy import TenantLimits

PERIOD_S = 60.0

# KEYS: calls bucket, tokens bucket. ARGV: rpm, tpm (0: unlimited), tokens, mode
# ("admit": check both and take 1 call + tokens; "charge": add tokens unconditionally;
# "refund": give back the prompt tokens of an admitted call that never ran; the call itself
# still counts, as a request the mesh had to refuse).
# Returns {admitted 0/1, retry_after in ms}.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1e6
local period = 60.0
if ARGV[4] == 'refund' then
  local function give_back(key, limit, cost)
    if limit <= 0 or cost <= 0 then return end
    local tat = tonumber(redis.call('GET', key) or '0')
    local back = tat - cost * period / limit
    if back <= now then
      redis.call('DEL', key)
    else
      redis.call('SET', key, tostring(back), 'PX', math.ceil((back - now) * 1000) + 1)
    end
  end
  give_back(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
  return {1, 0}
end
local function plan(key, limit, cost)
  if limit <= 0 or cost <= 0 then return nil, 0 end
  local interval = period / limit
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local wait = new_tat - period - now
  return new_tat, wait
end
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local calls = ARGV[4] == 'admit' and 1 or 0
local c_tat, c_wait = plan(KEYS[1], rpm, calls)
local t_tat, t_wait = plan(KEYS[2], tpm, tokens)
if ARGV[4] == 'admit' then
  local wait = math.max(c_wait, t_wait)
  if wait > 0 then return {0, math.ceil(wait * 1000)} end
end
if c_tat then redis.call('SET', KEYS[1], tostring(c_tat), 'PX', math.ceil((c_tat - now) * 1000) + 1) end
if t_tat then redis.call('SET', KEYS[2], tostring(t_tat), 'PX', math.ceil((t_tat - now) * 1000) + 1) end
return {1, 0}
"""


@dataclass(frozen=True)
class QuotaDecision:
    admitted: bool
    retry_after_s: float = 0.0  # when refused: how long until the request would fit


def never_fits(limits: TenantLimits, prompt_tokens: int) -> bool:
    """A prompt over a whole minute of the tenant's tokens: no wait ever admits it (decided
    without Redis, so also while Redis is away)."""
    return bool(limits.tpm) and prompt_tokens > limits.tpm


class Quotas:
    def __init__(self, client: AsyncClient) -> None:
        self._script = client.register_script(_GCRA)
        self.outage = outage_of(client)  # the client's view of Redis (cache/outage.py)

    async def admit(self, tenant: str, limits: TenantLimits, prompt_tokens: int) -> QuotaDecision:
        """Takes one call and `prompt_tokens` from the tenant's buckets, or neither. A request
        larger than a whole minute's tokens is refused for good (retry_after 0 means never)."""
        if not limits.rpm and not limits.tpm:
            return QuotaDecision(True)
        if never_fits(limits, prompt_tokens):
            return QuotaDecision(False, 0.0)
        admitted, wait_ms = await self._script(
            keys=[quota_calls(tenant), quota_tokens(tenant)],
            args=[limits.rpm, limits.tpm, prompt_tokens, "admit"])
        return QuotaDecision(bool(admitted), int(wait_ms) / 1000.0)

    async def refund(self, tenant: str, limits: TenantLimits, prompt_tokens: int) -> None:
        """Gives back the prompt tokens `admit` took for a call refused before it ran
        (invalid: the engine would not take it). The call still counts against rpm: a
        refused request cost the mesh a round trip, and free refusals would let a tenant
        send them without bound."""
        if limits.tpm:
            await self._script(keys=[quota_calls(tenant), quota_tokens(tenant)],
                               args=[limits.rpm, limits.tpm, prompt_tokens, "refund"])

    async def charge(self, tenant: str, limits: TenantLimits, tokens: int) -> None:
        """Adds `tokens` (a finished call's completion) to the tenant's tokens bucket."""
        if limits.tpm and tokens > 0:
            await self._script(keys=[quota_calls(tenant), quota_tokens(tenant)],
                               args=[0, limits.tpm, tokens, "charge"])
