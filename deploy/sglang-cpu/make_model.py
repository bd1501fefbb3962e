"""Build the tiny random-weight Llama model that deploy/sglang-cpu serves with real SGLang.

Usage: OUTDIR/venv/bin/python deploy/sglang-cpu/make_model.py OUTDIR/model

Nothing is downloaded. A byte-level BPE tokenizer is trained with `tokenizers` on local text
(/usr/share/common-licenses), wrapped as a `PreTrainedTokenizerFast` with a Llama-3.1-style chat
template (tools as JSON in a system turn, tool calls as `<|python_tag|>{"name", "parameters"}`,
tool results as `ipython` turns), and a `LlamaForCausalLM` (hidden 128, 4 layers, 4 heads,
2 KV heads) gets random weights, saved as bf16 safetensors. Deterministic: fixed seeds, files
read in sorted order. The saved JSON is patched for readers older than transformers 5
(`tokenizer_class`, `rope_theta`, `torch_dtype`).
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

SEED = 0
VOCAB_SIZE = 4096  # BPE target size, special tokens included
CORPUS_DIRS = ("/usr/share/common-licenses",)
SPECIAL_TOKENS = [  # ids 0..4, in this order
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|python_tag|>",
]
BOS, EOS = "<|begin_of_text|>", "<|eot_id|>"

# Llama-3.1-style (chat_template.jinja beside this file): BOS; one system turn holding the system
# message and, when tools are given, the tools as JSON; assistant tool calls as
# <|python_tag|>{"name": ..., "parameters": ...} (several joined by ";", as SGLang's llama3
# tool-call parser reads them); tool results as ipython turns. `arguments` may be a dict
# (Hugging Face style) or a JSON string (OpenAI style).
CHAT_TEMPLATE = (Path(__file__).resolve().parent / "chat_template.jinja").read_text(encoding="utf-8")


def corpus() -> list[str]:
    files = sorted({os.path.realpath(p) for d in CORPUS_DIRS for p in Path(d).glob("*") if p.is_file()})
    lines = [line for f in files
             for line in Path(f).read_text(encoding="utf-8", errors="ignore").splitlines()]
    if not lines:
        raise SystemExit(f"no training text found in {CORPUS_DIRS}")
    return lines


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    # Like Llama 3: encode() prepends <|begin_of_text|>; chat templates render it themselves.
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   model_max_length=4096, clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_model(out: Path, tokenizer) -> int:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    random.seed(SEED)
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
        rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="silu", tie_word_embeddings=False,
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS), eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
        pad_token_id=None, initializer_range=0.02,
    )
    with torch.no_grad():
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id,
                                               eos_token_id=config.eos_token_id)
    model.save_pretrained(out, safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def patch_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def patch_for_older_readers(out: Path) -> None:
    def tok_cfg(d: dict) -> None:
        d["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers 5 writes TokenizersBackend
        d["chat_template"] = CHAT_TEMPLATE  # also in chat_template.jinja (transformers >= 4.50 reads that)

    def model_cfg(d: dict) -> None:
        rope = d.get("rope_parameters") or {}
        d.setdefault("rope_theta", rope.get("rope_theta", 500000.0))
        d["torch_dtype"] = d.get("dtype", "bfloat16")
        d.setdefault("dtype", d["torch_dtype"])

    patch_json(out / "tokenizer_config.json", tok_cfg)
    patch_json(out / "config.json", model_cfg)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    params = build_model(out, tokenizer)
    patch_for_older_readers(out)
    print(f"model: {out} vocab={len(tokenizer)} params={params} "
          f"weights={(out / 'model.safetensors').stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
