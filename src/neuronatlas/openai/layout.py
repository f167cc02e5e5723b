"""Where an import reads from: model shapes, source resolution and the list of neuron files.

A SOURCE is a local folder (the seed layout `explanations/ + activations/`, or OpenAI's
`explanations/ + collated-activations/`, either possibly under a `gpt2-small/`, `data/` or
`gpt2_small_data/` subfolder), an https base URL, or an alias for OpenAI's public blob
(`openai:gpt2-small`, `openai:gpt2-xl`). Resolution says in one sentence what it found, so a
user importing the wrong folder learns it before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from neuronatlas.errors import BadInput

BLOB = "https://openaipublic.blob.core.windows.net/neuron-explainer/"


@dataclass(frozen=True)
class ModelShape:
    """The MLP shape of a model whose neurons OpenAI published."""

    name: str  # our name for it: gpt2-small | gpt2-xl
    model_id: str  # the Hugging Face id of the model the activations came from
    n_layers: int
    d_mlp: int


MODELS: dict[str, ModelShape] = {
    "gpt2-small": ModelShape("gpt2-small", "gpt2", 12, 3072),
    "gpt2-xl": ModelShape("gpt2-xl", "gpt2-xl", 48, 6400),
}

ALIASES: dict[str, tuple[str, str]] = {
    # alias: (base URL, model name)
    "openai:gpt2-small": (BLOB + "gpt2_small_data/", "gpt2-small"),
    "openai:gpt2-xl": (BLOB + "data/", "gpt2-xl"),
}

# Provenance recorded with every OpenAI import (see docs OPENAI_FORMATS.md).
GELU_NOTE = (
    "OpenAI's published activations were computed with an approximate GELU "
    "(GPT-2 small error vs exact: median 0.009, p99.9 0.17); GPT-2 small and XL "
    "explanation scores come from different methodologies and are not comparable."
)

ACTIVATION_DIRS = ("collated-activations", "activations")
SUBFOLDERS = ("", "gpt2-small", "data", "gpt2_small_data", "data/gpt2-small")


def known_shape(model: str | None) -> ModelShape | None:
    """The shape of a model OpenAI published (`gpt2-small`, `gpt2-xl`, or their hub ids
    `gpt2`, `gpt2-xl`); None for any other model id, whose shape comes from the files."""
    if model is None:
        return None
    if model in MODELS:
        return MODELS[model]
    return next((s for s in MODELS.values() if s.model_id == model), None)


def shape_for(n_layers: int, d_mlp: int) -> ModelShape | None:
    """The known model with exactly this shape, if any."""
    for shape in MODELS.values():
        if (shape.n_layers, shape.d_mlp) == (n_layers, d_mlp):
            return shape
    return None


@dataclass(frozen=True)
class NeuronFiles:
    """Where one neuron's two files are: local paths or URLs (None = known missing)."""

    layer: int
    neuron: int
    explanations: str | None
    activations: str | None


@dataclass(frozen=True)
class Source:
    """A resolved import source."""

    kind: str  # "local" | "http"
    root: str  # folder path, or base URL ending in "/"
    activations_dir: str  # "activations" (seed) or "collated-activations" (OpenAI)
    data_source: str  # what to record in meta: the alias, URL or absolute folder
    shape: ModelShape | None  # known shape (from --model, the alias or the files)
    description: str  # one sentence for the user

    def url(self, kind: str, layer: int, neuron: int) -> str:
        if kind == "explanations":
            return f"{self.root}explanations/{layer}/{neuron}.jsonl"
        return f"{self.root}{self.activations_dir}/{layer}/{neuron}.json"


def is_remote(source: str) -> bool:
    return source in ALIASES or source.startswith(("https://", "http://"))


def resolve_local(folder: str | Path, model: str | None) -> Source:
    """Find the layout inside a local folder and say which one it is."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise BadInput(f"{folder}: no such folder (or use an https URL or openai:gpt2-small)")
    for sub in SUBFOLDERS:
        root = base / sub if sub else base
        if not (root / "explanations").is_dir():
            continue
        found = [d for d in ACTIVATION_DIRS if (root / d).is_dir()]
        if not found:
            continue
        acts = found[0]
        layout = "OpenAI layout" if acts == "collated-activations" else "seed layout"
        extra = "" if len(found) == 1 else f" (ignoring {found[1]}/)"
        shape = known_shape(model)
        return Source(
            kind="local",
            root=str(root.resolve()) + "/",
            activations_dir=acts,
            data_source=str(root.resolve()),
            shape=shape,
            description=f"{layout} in {root}: explanations/ and {acts}/{extra}",
        )
    tried = ", ".join(str(base / s) if s else str(base) for s in SUBFOLDERS)
    raise BadInput(
        f"{folder}: found no explanations/ beside activations/ or collated-activations/ "
        f"(looked in {tried})"
    )


def remote_candidates(source: str) -> tuple[list[str], str | None]:
    """Base URLs to probe for a remote source, and the model its alias implies."""
    if source in ALIASES:
        base, model = ALIASES[source]
        return [base], model
    if not source.startswith(("https://", "http://")):
        raise BadInput(f"{source}: not a folder, URL or one of {', '.join(ALIASES)}")
    base = source if source.endswith("/") else source + "/"
    return [base + s + "/" if s else base for s in SUBFOLDERS], None


_NUM = re.compile(r"^(\d+)\.(json|jsonl)$")


def _numbered(folder: Path, suffix: str) -> dict[int, Path]:
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NUM.match(p.name)
            if m and p.name.endswith(suffix) and m.group(2) == suffix.lstrip("."):
                out[int(m.group(1))] = p
    return out


def _layer_dirs(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    return {int(p.name): p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()}


def local_neurons(
    src: Source, layers: list[int] | None
) -> tuple[list[NeuronFiles], tuple[int, int]]:
    """Every neuron with at least one file, in (layer, neuron) order, and the inferred shape.

    A neuron with only one of its two files is listed with the other as None so the import
    can name it.
    """
    root = Path(src.root)
    exp_layers = _layer_dirs(root / "explanations")
    act_layers = _layer_dirs(root / src.activations_dir)
    all_layers = sorted(set(exp_layers) | set(act_layers))
    wanted = all_layers if layers is None else [x for x in all_layers if x in set(layers)]
    files: list[NeuronFiles] = []
    max_neuron = -1
    for layer in wanted:
        exp = _numbered(exp_layers[layer], ".jsonl") if layer in exp_layers else {}
        act = _numbered(act_layers[layer], ".json") if layer in act_layers else {}
        for n in sorted(set(exp) | set(act)):
            max_neuron = max(max_neuron, n)
            e, a = exp.get(n), act.get(n)
            files.append(
                NeuronFiles(layer, n, None if e is None else str(e), None if a is None else str(a))
            )
    inferred = (max(all_layers) + 1 if all_layers else 0, max_neuron + 1)
    return files, inferred
