"""What `ostinato up` learns from its first engine about the served model's limits: the
context window (GET /v1/models max_model_len) and the longest prompt it takes (SGLang's
GET /get_server_info max_req_input_len), which the gateway then checks before it queues a
call (gateway/context_window.py)."""

from __future__ import annotations

import json
import urllib.request

# An engine that has started answers these at once; one starved of CPU (engines busy beside
# it on a small machine) can take many seconds, and a timeout here leaves the gateway without
# the model's limits (a helper's review of `make test-engine`)
ASK_TIMEOUT_S = 60.0


def engine_context_length(engine_url: str, timeout_s: float = ASK_TIMEOUT_S) -> int:
    """The context window an SGLang server (or the sim engine) serves its model with: its
    GET /v1/models max_model_len; 0 when it does not say."""
    try:
        with urllib.request.urlopen(f"{engine_url.rstrip('/')}/v1/models",
                                    timeout=timeout_s) as resp:
            window = json.loads(resp.read())["data"][0].get("max_model_len")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return 0
    return window if isinstance(window, int) and window > 0 else 0


def engine_input_limit(engine_url: str, timeout_s: float = ASK_TIMEOUT_S) -> int:
    """The longest prompt an SGLang server takes: its GET /get_server_info
    max_req_input_len (min(context length, KV pool) less a few tokens); 0 when it does not
    say (the sim engine)."""
    try:
        with urllib.request.urlopen(f"{engine_url.rstrip('/')}/get_server_info",
                                    timeout=timeout_s) as resp:
            limit = json.loads(resp.read()).get("max_req_input_len")
    except (OSError, ValueError, AttributeError):
        return 0
    return limit if isinstance(limit, int) and limit > 0 else 0
