"""The configuration reference (docs/reference/config.md), generated from the config
dataclasses in ostinato/config.py, ostinato/gateway_config.py and ostinato/service_config.py:
every field with its type, default, environment variable and the comment that documents it in
the source (above the field or at its line's end).

`make docs` (`python -m ostinato.reference_docs`) rewrites the file; tests/test_config_reference.py fails
when it is stale or when a field has no comment.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ostinato import config
from ostinato.service_env import GRPC_EXPERIMENTS

OUT = Path(__file__).resolve().parents[1] / "docs" / "reference" / "config.md"


@dataclass(frozen=True)
class FieldDoc:
    section: str  # "" for MeshConfig's own fields
    name: str
    type: str
    default: str
    env: str
    doc: str


def _comments(cls: type) -> dict[str, str]:
    """Field name -> its comment: the comment lines right above it and its trailing one."""
    source = inspect.getsource(cls)
    above: list[str] = []
    docs: dict[str, str] = {}
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1].strip() != tok.string:
            trailing[tok.start[0]] = tok.string.lstrip("#").strip()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            above = []
            continue
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        name = stripped.split(":", 1)[0]
        if ":" in stripped and name.isidentifier() and line.startswith("    ") \
                and not line.startswith("     "):
            docs[name] = " ".join([*above, trailing.get(number, "")]).strip()
        above = []  # a comment documents the field right below it
    return docs


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is not None:
        return str(tp).replace("typing.", "").replace("collections.abc.", "")
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return "{}" if isinstance(value, dict) else repr(value)
    return "(required)"


def fields() -> Iterator[FieldDoc]:
    hints = typing.get_type_hints(config.MeshConfig)
    own = _comments(config.MeshConfig)
    for f in dataclasses.fields(config.MeshConfig):
        tp = hints[f.name]
        if not dataclasses.is_dataclass(tp):
            yield FieldDoc("", f.name, _type_name(tp), _default(f), f"OSTINATO_{f.name.upper()}",
                           own.get(f.name, ""))
    for f in dataclasses.fields(config.MeshConfig):
        section = hints[f.name]
        if not (isinstance(section, type) and dataclasses.is_dataclass(section)):
            continue
        docs = _comments(section)
        section_hints = typing.get_type_hints(section)
        for sf in dataclasses.fields(section):
            yield FieldDoc(f.name, sf.name, _type_name(section_hints[sf.name]), _default(sf),
                           f"OSTINATO_{f.name.upper()}__{sf.name.upper()}", docs.get(sf.name, ""))


def render() -> str:
    out = ["# Configuration reference", "",
           "Generated from `ostinato/config.py`, `ostinato/gateway_config.py` and "
           "`ostinato/service_config.py` by `make docs` "
           "(`python -m ostinato.reference_docs`); do not "
           "edit by hand.", "",
           "Sources, later ones winning: the defaults below, a YAML file (`--config`; sections "
           "named as below), environment variables, then command-line flags. Unknown fields and "
           "bad values are refused with the field's name. A mapping field's environment form is "
           "`k1=v1,k2=v2`.", ""]
    section = None
    for fd in fields():
        if fd.section != section:
            section = fd.section
            title = f"`{section}`" if section else "top level"
            cls = typing.get_type_hints(config.MeshConfig).get(section) if section else None
            if out[-1] != "":
                out.append("")
            out += [f"## {title}", ""]
            if cls is not None and cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
                out += [" ".join(cls.__doc__.split()), ""]
            out += ["| field | type | default | environment | meaning |", "|---|---|---|---|---|"]
        doc = fd.doc.replace("|", "\\|")
        out.append(f"| `{fd.name}` | {fd.type} | `{fd.default}` | `{fd.env}` | {doc} |")
    out += ["", "## Other environment variables", "",
            "Not config fields (`ostinato/config.py` NOT_CONFIG_VARIABLES); every other "
            "`OSTINATO_*` variable sets one, and an unknown one is refused.", "",
            "| variable | meaning |", "|---|---|"]
    out += [f"| `{name}` | {doc} |" for name, doc in config.NOT_CONFIG_VARIABLES.items()]
    out += ["", "gRPC's own `GRPC_EXPERIMENTS` is set for the services of `ostinato up` and of "
            f"the image to `{GRPC_EXPERIMENTS}` (gRPC's older I/O path: less CPU a call) "
            "unless it is set already (ostinato/service_env.py)."]
    return "\n".join(out) + "\n"
