"""`ostinato fetch-tokenizer MODEL DIR`: a model's tokenizer and chat template put in DIR
once, and checked to load, for the gateway's and workers' `hf:DIR` tokenizer.

Their own loading never downloads (ostinato/tokenizers.py: a service must start the same
way every time, and fail at once when its tokenizer is missing); where the model is a
Hugging Face Hub id, this fetches its tokenizer files only (no weights) before they start:
Kubernetes runs it as an init container of the gateway and worker pods
(deploy/k8s/overlays/gpu-sglang; deploy review 2026-12-05 F1: they crash-looped on a Hub
id they could not load offline). MODEL may also be a local model directory, whose
tokenizer files are copied.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
from pathlib import Path
from typing import Any

from ostinato.config_checks import ConfigError

# What AutoTokenizer and the chat template read; never the weights.
TOKENIZER_FILES = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "config.json",
                   "generation_config.json", "vocab*", "merges.txt", "*.tiktoken",
                   "chat_template*")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fetch-tokenizer", help="put a model's tokenizer and chat template in a "
                       "directory (from the Hugging Face Hub, or a local model directory), for "
                       "kv_tokenizer hf:DIR")
    p.add_argument("model", metavar="MODEL",
                   help="a Hugging Face Hub id (Qwen/Qwen2.5-7B-Instruct) or a model directory")
    p.add_argument("dest", metavar="DIR", help="where to put the tokenizer files")


def tokenizer_files(names: list[str]) -> list[str]:
    """The names among `names` that a tokenizer needs."""
    return [n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in TOKENIZER_FILES)]


def fetch(model: str, dest: Path) -> list[str]:
    """Puts MODEL's tokenizer files in `dest` and loads them as the services will (the
    tokenizer and its chat template); the files' names. ConfigError when they do not load."""
    from ostinato.tokenizers import load_renderer

    source = Path(model)
    if not source.is_dir() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise ConfigError(f"{model!r}: no such model directory (nor a Hub id: OWNER/NAME)")
    if source.is_dir():
        names = tokenizer_files(sorted(p.name for p in source.iterdir() if p.is_file()))
        if not any(fnmatch.fnmatch(n, "tokenizer*") for n in names):
            raise ConfigError(f"{model}: no tokenizer files in this model directory "
                              "(tokenizer.json, tokenizer_config.json, ...)")
        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / name, dest / name)
    else:
        dest.mkdir(parents=True, exist_ok=True)
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(repo_id=model, allow_patterns=list(TOKENIZER_FILES), local_dir=dest)
        except Exception as exc:  # the hub's errors (network, no such repo, gated) alike
            raise ConfigError(f"cannot fetch the tokenizer of {model!r}: {exc}") from exc
    load_renderer(f"hf:{dest}").render([{"role": "user", "content": "Hello"}], None)
    return sorted(p.name for p in dest.iterdir() if p.is_file())


def run(args: argparse.Namespace) -> int:
    names = fetch(args.model, Path(args.dest))
    print(f"tokenizer of {args.model} in {args.dest}: {', '.join(names)}")
    return 0
