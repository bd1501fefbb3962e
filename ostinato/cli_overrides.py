"""Command-line flags -> mesh config overrides: the flags a command was given (only those)
over the config file and OSTINATO_* variables (ostinato/config.py)."""

from __future__ import annotations

import argparse
from typing import Any

from ostinato.config import MeshConfig, load_mesh_config


def flag_overrides(args: argparse.Namespace, section: str, names: dict[str, str]) -> dict[str, Any]:
    """{section: {field: value}} for each flag (attribute -> config field) that was given."""
    values = {field: getattr(args, attr) for attr, field in names.items()
              if getattr(args, attr, None) is not None}
    return {section: values} if values else {}


def merge(*parts: dict[str, Any]) -> dict[str, Any]:
    """Overrides merged section by section, later parts winning."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def load_config(args: argparse.Namespace, overrides: dict[str, Any]) -> MeshConfig:
    return load_mesh_config(getattr(args, "config", None), overrides=overrides)
