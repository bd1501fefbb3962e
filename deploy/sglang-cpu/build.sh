#!/usr/bin/env bash
# Real SGLang 0.5.23 on a CPU-only machine, with a tiny random-weight Llama built here.
#
#   deploy/sglang-cpu/build.sh [OUTDIR]        (OUTDIR defaults to .cache/sglang-cpu)
#
# Builds, under OUTDIR:
#   venv/    python3.11 venv: torch 2.13.0 (CPU build) first, then requirements.txt (SGLang's
#            dependencies without the CUDA packages, all pinned), then --no-deps sglang,
#            sglang-kernel and timm
#   shim/    a copy of deploy/sglang-cpu/shim: import-only sgl_kernel and torchvision packages
#   model/   the tiny Llama of make_model.py: bf16 safetensors, byte-level BPE tokenizer, and
#            chat_template.jinja
#   launch   `OUTDIR/launch --model-path OUTDIR/model --port N [sglang args]` starts a real server
#   python   the venv's python with the shim on PYTHONPATH (to use sglang in-process)
#   .stamp   a hash of the inputs: while it matches, the build is a no-op
#
# Needs PyPI only (and the torch 2.13.0 CPU wheel that pip finds on this machine's disk): no
# GitHub, no Hugging Face hub. Cold: about 2 minutes and 4.6 GB. A model or shim change keeps the
# venv; a requirements or version change rebuilds it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-.cache/sglang-cpu}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${SGLANG_CPU_PYTHON:-python3.11}"

TORCH_VERSION=2.13.0
# SGLang itself pins torch==2.14.1 and CUDA packages: installed without its dependencies.
NO_DEPS="sglang==0.5.23 sglang-kernel==0.4.10 timm==1.0.25"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)
T_STEP=$T_START
STEP_NAME=
step() {  # step NAME: print how long the previous step took, then announce NAME
    if [ -n "$STEP_NAME" ]; then printf '[sglang-cpu] %-32s %6s s\n' "$STEP_NAME" "$(since "$T_STEP")"; fi
    T_STEP=$(now)
    STEP_NAME="$1"
    if [ -n "$1" ]; then echo "[sglang-cpu] $1 ..."; fi
}

inputs_hash() {  # everything the build depends on, in a stable order
    {
        "$PY" -c 'import sys; print(sys.version)'
        (cd "$HERE" && find requirements.txt make_model.py chat_template.jinja build.sh shim -type f \
            ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum)
    } | sha256sum | cut -d' ' -f1
}

exec 9>"$OUT/.lock"
flock 9  # one build of OUTDIR at a time

HASH="$(inputs_hash)"
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$HASH" ] && [ -x "$OUT/launch" ] \
    && [ -x "$OUT/venv/bin/python" ] && [ -f "$OUT/model/model.safetensors" ]; then
    echo "[sglang-cpu] up to date (${HASH:0:12}) in $(since "$T_START") s: $OUT/launch"
    exit 0
fi
rm -f "$OUT/.stamp"
echo "[sglang-cpu] building $OUT (inputs ${HASH:0:12})"

VENV_HASH="$({ "$PY" --version; echo "$TORCH_VERSION $NO_DEPS"; cat "$HERE/requirements.txt"; } \
    | sha256sum | cut -d' ' -f1)"
if [ -f "$OUT/venv/.stamp" ] && [ "$(cat "$OUT/venv/.stamp")" = "$VENV_HASH" ]; then
    echo "[sglang-cpu] venv up to date"
else
    step "venv ($PY)"
    rm -rf "$OUT/venv"
    "$PY" -m venv "$OUT/venv"
    PIP=("$OUT/venv/bin/python" -m pip --disable-pip-version-check)
    pip() {  # quiet, minus the machine's notes about absent local index folders; pip's status
        "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
    }

    # torch first, alone, and checked with a dry run: where pip finds no CPU wheel of this
    # version it would take PyPI's CUDA build with GBs of nvidia-* packages. Refuse that.
    step "torch==$TORCH_VERSION (CPU build)"
    pip install -q --dry-run --report "$OUT/venv/torch-plan.json" "torch==$TORCH_VERSION"
    "$OUT/venv/bin/python" - "$OUT/venv/torch-plan.json" <<'EOF'
import json, sys
plan = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
gpu = [n for n in plan if n.startswith(("nvidia-", "cuda-", "triton"))]
if "+cpu" not in plan.get("torch", "") or gpu:
    sys.exit(f"[sglang-cpu] pip would install torch {plan.get('torch')} with {gpu}, not the CPU build: "
             "put torch-2.13.0+cpu-cp311-*.whl where pip looks (PIP_FIND_LINKS) and retry")
EOF
    pip install -q "torch==$TORCH_VERSION"

    # requirements.txt pins torch==2.13.0 too, so nothing in it can move torch.
    step "requirements.txt"
    pip install -q -r "$HERE/requirements.txt"

    step "--no-deps $NO_DEPS"
    # shellcheck disable=SC2086
    pip install -q --no-deps $NO_DEPS

    step "check venv"
    "$OUT/venv/bin/python" - "$TORCH_VERSION" <<'EOF'
import importlib.metadata as md, sys
torch = md.version("torch")
gpu = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(
    ("nvidia-", "cuda-", "flashinfer", "torchvision", "torchaudio", "torch-memory-saver")))
if not torch.startswith(sys.argv[1]) or "+cpu" not in torch or gpu:
    sys.exit(f"[sglang-cpu] wrong venv: torch {torch}, CUDA/vision packages {gpu}")
print(f"[sglang-cpu] torch {torch}, sglang {md.version('sglang')}, no CUDA packages")
EOF
    echo "$VENV_HASH" >"$OUT/venv/.stamp"
fi

step "shim, launch, python"
rm -rf "$OUT/shim"
mkdir -p "$OUT/shim"
(cd "$HERE/shim" && find . -type f -name '*.py' ! -path '*/__pycache__/*' -exec cp --parents {} "$OUT/shim/" \;)
cat >"$OUT/launch" <<'EOF'
#!/bin/sh
# Start a real SGLang server on the CPU (written by deploy/sglang-cpu/build.sh):
#   launch --model-path DIR --port N [more sglang.launch_server args]
# DIR is usually the tiny model beside this file. --sleep-on-idle: an idle SGLang scheduler
# otherwise polls its sockets without pause, a whole core each, taken from every other
# process on the machine (the engines' own forward passes included).
HERE="$(cd "$(dirname "$0")" && pwd)"
export SGLANG_USE_CPU_ENGINE=1
export PYTHONPATH="$HERE/shim${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
exec "$HERE/venv/bin/python" -m sglang.launch_server --device cpu --attention-backend torch_native \
    --cuda-graph-backend-decode disabled --cuda-graph-backend-prefill disabled --dtype bfloat16 \
    --sleep-on-idle "$@"
EOF
cat >"$OUT/python" <<'EOF'
#!/bin/sh
# The SGLang venv's python with the CPU shim (written by deploy/sglang-cpu/build.sh).
HERE="$(cd "$(dirname "$0")" && pwd)"
export SGLANG_USE_CPU_ENGINE=1
export PYTHONPATH="$HERE/shim${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
exec "$HERE/venv/bin/python" "$@"
EOF
chmod +x "$OUT/launch" "$OUT/python"

step "import check"
"$OUT/python" -c 'import torchvision.transforms, sglang.srt.server_args
from sgl_kernel import copy_all_layer_kv_cache_cpu
from sglang.srt.utils.common import cpu_has_amx_support
assert not cpu_has_amx_support(), "the shim must not enable the AMX kernels it does not have"'

step "model"
rm -rf "$OUT/model" "$OUT/model.tmp"
HF_HUB_OFFLINE=1 "$OUT/venv/bin/python" "$HERE/make_model.py" "$OUT/model.tmp"
mv "$OUT/model.tmp" "$OUT/model"

step ""
echo "$HASH" >"$OUT/.stamp"
echo "[sglang-cpu] built in $(since "$T_START") s ($(du -sh "$OUT" | cut -f1)):" \
    "$OUT/launch --model-path $OUT/model --port PORT"
