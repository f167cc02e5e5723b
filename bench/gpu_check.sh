#!/usr/bin/env bash
# The scrape on a GPU, from the source tree: bare-forward vs scrape throughput (tokens/s, ratio)
# for random-weight GPT-2-small- and Gemma-3-270M-shaped models, and the CUDA state against the
# CPU state on the same activations. Installs nothing and reads no weights or network: it needs
# a python3 with torch (CUDA), transformers, numpy, safetensors, typer, rich and httpx; pure-
# Python wheels copied beside the tree (e.g. msgspec) go on PYTHONPATH through EXTRA_PATH.
#
#   bench/gpu_check.sh                        # auto: CUDA when torch sees a GPU
#   bench/gpu_check.sh --device cpu --models tiny --tokens 4096   # what the test suite runs
#   PYTHON=/path/to/python3 EXTRA_PATH=wheels/msgspec bench/gpu_check.sh --json gpu.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$here/src${EXTRA_PATH:+:$EXTRA_PATH}${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python3}" "$here/bench/gpu_check.py" "$@"
