"""A GGUF model dequantized once and cached as fp32 safetensors under `$NEURONATLAS_HOME/models`.

Transformers can load a GGUF but dequantizes it on every load (~1 min for Gemma-3-270M,
~16 s for SmolLM2-135M) and refuses to `save_pretrained` it, so the first use dequantizes,
rebuilds a plain model from its config (without the GGUF `quantization_config`), copies the
weights in and saves model + tokenizer. Later loads read safetensors in seconds.

The cache is written to a temporary sibling folder and renamed into place, so a killed build
never leaves a half-written model that later loads would trust.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from neuronatlas.errors import ModelUnavailable
from neuronatlas.paths import neuronatlas_home

log = logging.getLogger(__name__)

#: The file in a cached folder that names the model it holds (see `models.load`).
IDENTITY_FILE = "neuronatlas_model.json"


def cached_model_dir(name: str) -> Path:
    return neuronatlas_home() / "models" / name


def is_cached(folder: Path) -> bool:
    return (folder / IDENTITY_FILE).exists() and (folder / "config.json").exists()


def ensure_dequantized(
    name: str, locate_gguf: Callable[[Path], Path], identity: dict[str, str]
) -> Path:
    """The cached folder of model `name`, building it first if needed.

    locate_gguf(work folder) returns the GGUF file to dequantize (it may write it into the
    work folder, e.g. by joining parts; a file it wrote there is deleted after use).
    identity: what `IDENTITY_FILE` records (name, revision, source).
    """
    target = cached_model_dir(name)
    if is_cached(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        _build(locate_gguf(work), work, identity)
        work.chmod(0o755)  # mkdtemp makes it private; the cache is for every local user
        try:
            os.rename(work, target)
        except OSError:
            if not is_cached(target):  # someone else's half-built folder: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def _build(gguf: Path, work: Path, identity: dict[str, str]) -> None:
    """Dequantize `gguf` and save model + tokenizer + identity into `work`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.warning("dequantizing %s once into the model cache", gguf.name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config = AutoConfig.for_model(**config.to_dict())
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_keys(model)]
    if missing or unexpected:
        raise ModelUnavailable(
            f"dequantized weights of {gguf.name} do not fit the rebuilt model: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    del quantized
    if gguf.parent == work:
        gguf.unlink()
    model.save_pretrained(str(work))
    tokenizer.save_pretrained(str(work))
    (work / IDENTITY_FILE).write_text(json.dumps(identity, indent=1))


def _tied_keys(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    return set(keys)
