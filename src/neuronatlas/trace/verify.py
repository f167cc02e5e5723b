"""Intervention check: does the graph predict what ablating a node does to the real model?

For a neuron node, zero it at its own position only in the real model (attention patterns,
norms and nonlinearities all live), measure the change of the demeaned target logit, and
compare with the graph's prediction, -total_effect (first order, attention patterns frozen,
norms and activations by their derivatives). Agreement across the
top nodes (Spearman rank correlation, sign agreement) is the evidence that the graph's
ranking means something for the model as it really runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from neuronatlas.errors import BadInput

if TYPE_CHECKING:
    from neuronatlas.models.loaded import LoadedModel
    from neuronatlas.trace.records import TraceGraph


class Ablation(msgspec.Struct, kw_only=True):
    """One node ablated: predicted and actual change of the demeaned target logit."""

    node_id: str
    neuron_id: str
    position: int
    predicted: float
    actual: float


class InterventionCheck(msgspec.Struct, kw_only=True):
    """Ablations of the top nodes and how well the predictions rank and sign them."""

    target: str
    ablations: list[Ablation]
    spearman: float | None
    sign_agreement: float | None


@contextmanager
def ablated_at(model: LoadedModel, layer: int, neuron: int, position: int) -> Iterator[None]:
    """While open, neuron (layer, neuron) is 0 at `position` only, in every forward pass."""
    from neuronatlas.steer.edit import applied, make_edit

    with applied(model, make_edit(model, layer, neuron, "ablate"), positions=[position]):
        yield


def demeaned_logit(model: LoadedModel, ids: list[int], token: int) -> float:
    """The real model's demeaned logit of `token` after `ids` (before any soft-cap)."""
    import torch

    hf = model.model
    with torch.no_grad():
        hidden = hf.base_model(
            input_ids=torch.tensor([ids], device=model.device), use_cache=False
        ).last_hidden_state[0, -1]
        w_u = hf.get_output_embeddings().weight
        return float(hidden @ (w_u[token] - w_u.mean(0)))


def check_interventions(model: LoadedModel, graph: TraceGraph, top: int = 20) -> InterventionCheck:
    """Ablate each of the `top` neuron nodes (by rank) in the real model at its position and
    compare the actual change of the demeaned target logit with -total_effect.

    total_effect is taken for the graph's weighted targets; the check needs a single target
    (`trace(..., target=TOKEN)`), else BadInput.
    """
    if len(graph.targets) != 1:
        raise BadInput("the intervention check needs a graph traced for one target token")
    if top < 1:
        raise BadInput(f"top={top}: check at least one node")
    ids = graph.token_ids
    base = demeaned_logit(model, ids, graph.target_id)
    out: list[Ablation] = []
    for node in graph.neurons()[:top]:
        assert node.neuron is not None and node.neuron_id is not None
        with ablated_at(model, node.layer, node.neuron, node.position):
            after = demeaned_logit(model, ids, graph.target_id)
        out.append(
            Ablation(
                node_id=node.node_id,
                neuron_id=node.neuron_id,
                position=node.position,
                predicted=-(node.total_effect or 0.0),
                actual=after - base,
            )
        )
    return InterventionCheck(
        target=graph.target,
        ablations=out,
        spearman=spearman([a.predicted for a in out], [a.actual for a in out]),
        sign_agreement=sign_agreement([a.predicted for a in out], [a.actual for a in out]),
    )


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # ties get their mean rank
    for v in np.unique(x):
        m = x == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return ranks


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman rank correlation; None with fewer than 3 values or a constant side."""
    if len(a) < 3:
        return None
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def sign_agreement(predicted: list[float], actual: list[float], eps: float = 1e-6) -> float | None:
    """Share of ablations whose actual change (beyond eps) has the predicted sign."""
    pairs = [(p, a) for p, a in zip(predicted, actual, strict=True) if abs(a) > eps]
    if not pairs:
        return None
    return sum((p > 0) == (a > 0) for p, a in pairs) / len(pairs)
