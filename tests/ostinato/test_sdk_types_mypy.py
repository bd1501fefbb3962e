"""The SDK is typed: it ships py.typed, and `mypy --strict` passes on every module of it (the
generated stubs aside: pyproject.toml's [tool.mypy]). The cache under .cache/mypy keeps a
re-run to about a second."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ["ostinato/__init__.py", "ostinato/client.py", "ostinato/aio_client.py", "ostinato/dag.py",
       "ostinato/errors.py", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("ostinato/sdk_*.py"))]


def test_sdk_passes_mypy_strict() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(ROOT / ".cache" / "mypy"),
         *SDK],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_package_ships_py_typed() -> None:
    assert (ROOT / "ostinato" / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["ostinato"]
