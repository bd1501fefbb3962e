"""The served model's tokenizer, for the KV-reference index's token-block hashes.

The gateway hashes each prompt's token blocks to route on the index, and workers translate
their engine's KV events (over token ids) into the same hashes, so both must tokenize as the
engine does. Specs:

- ``sim``: the sim engine's word-piece tokenizer (workers/sim/tokenizer.py);
- ``hf:<name or path>``: a Hugging Face tokenizer loaded offline (``transformers``), encoding
  as SGLang's tokenizer manager does (special tokens included), for real SGLang engines.
"""

from __future__ import annotations

from functools import lru_cache

from cache.block_hash import Tokenize
from ostinato.config import ConfigError, check_tokenizer_spec


@lru_cache(maxsize=4)
def load_tokenizer(spec: str) -> Tokenize:
    check_tokenizer_spec(spec, "tokenizer")
    if spec == "sim":
        from workers.sim.tokenizer import tokenize
        return tokenize
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers ships with sentence-transformers
        raise ConfigError(f"tokenizer {spec!r} needs the transformers package") from exc
    try:
        tok = AutoTokenizer.from_pretrained(spec[3:], local_files_only=True)
    except OSError as exc:
        raise ConfigError(f"tokenizer {spec!r}: cannot load it offline: {exc}") from exc

    def encode(text: str) -> list[int]:
        return list(tok.encode(text))

    return encode
