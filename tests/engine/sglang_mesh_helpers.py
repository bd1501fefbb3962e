"""What the tests of the mesh on real SGLang share."""

from __future__ import annotations

ACME = "key-acme-engine"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
