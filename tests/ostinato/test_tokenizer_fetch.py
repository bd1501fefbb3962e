"""`ostinato fetch-tokenizer`: a model directory's tokenizer files (not its weights) copied
and checked to load as the services load them; what does not load is a configuration error
(exit 2), not a directory a gateway would crash-loop on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ostinato.cli import main
from ostinato.tokenizer_fetch import tokenizer_files
from ostinato.tokenizers import load_tokenizer
from tests.ostinato.test_chat_renderer import hf_model_dir  # noqa: F401 (a fixture)


@pytest.mark.parametrize(("names", "kept"), [
    (["tokenizer.json", "tokenizer_config.json", "model.safetensors", "config.json"],
     ["tokenizer.json", "tokenizer_config.json", "config.json"]),
    (["vocab.json", "merges.txt", "pytorch_model.bin", "special_tokens_map.json"],
     ["vocab.json", "merges.txt", "special_tokens_map.json"]),
    (["tokenizer.model", "model-00001-of-00004.safetensors", "chat_template.jinja"],
     ["tokenizer.model", "chat_template.jinja"]),
])
def test_only_tokenizer_files_are_taken(names: list[str], kept: list[str]) -> None:
    assert tokenizer_files(names) == kept


def test_a_model_directory_gives_its_tokenizer_not_its_weights(
        hf_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    model = tmp_path / "model"
    shutil.copytree(hf_model_dir, model)
    (model / "model.safetensors").write_bytes(b"\0" * 1024)  # weights: never copied
    dest = tmp_path / "tokenizer"
    assert main(["fetch-tokenizer", str(model), str(dest)]) == 0
    assert not (dest / "model.safetensors").exists() and (dest / "tokenizer.json").exists()
    assert load_tokenizer(f"hf:{dest}")("hello") == load_tokenizer(f"hf:{hf_model_dir}")("hello")
    assert f"tokenizer of {model} in {dest}" in capsys.readouterr().out


def test_what_does_not_load_is_a_configuration_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    assert main(["fetch-tokenizer", str(empty), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "no tokenizer files in this model directory" in err
    # a mistyped path is no Hub id: said so, without asking the Hub
    assert main(["fetch-tokenizer", str(tmp_path / "no" / "such"), str(tmp_path / "out")]) == 2
    assert "no such model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing left behind
