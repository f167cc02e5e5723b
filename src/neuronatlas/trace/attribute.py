"""`attribute`: the attribution matrix of a prompt over neurons, under a node budget.

Steps (see docs/ATTRIBUTION.md):

1. clean run, recorded (`Linearised`); logit targets chosen (`targets.choose`);
2. logit rows (direct effects) and total effects of every neuron on the logits: together the
   first-order score that picks a candidate pool of `candidates` neurons (never position 0
   when it holds BOS: those neurons see only BOS and stay in their layer's rest bucket);
3. greedy expansion: rank unexpanded pool neurons by their influence on the logits through
   the rows computed so far (the normalised-|A| power series), compute the next rows in
   batches of `batch_size` by backward passes, repeat until `max_nodes` neuron rows;
4. assembly: every neuron not selected is folded into its (layer, position) rest bucket, so
   each row still sums, with its constant, to its target's value exactly.

Columns are only ever kept for the pool (plus the per-(layer, position) remainder and the
embeddings): never a dense all-neurons x all-neurons matrix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from neuronatlas.errors import BadInput
from neuronatlas.trace import rows as rowlib
from neuronatlas.trace.influence import normalise, propagate
from neuronatlas.trace.linearised import Linearised
from neuronatlas.trace.targets import LogitTargets, choose
from neuronatlas.trace.transposed import Transposed

if TYPE_CHECKING:
    import torch

    from neuronatlas.models.loaded import LoadedModel

DEFAULT_MAX_NODES = 1000
DEFAULT_CANDIDATES = 16_384
DEFAULT_BATCH = 64
MAX_NODES_LIMIT = 10_000
# Rows computed between two influence updates of the greedy expansion: more updates follow
# multi-hop paths sooner, each costs a pass over the rows so far. Independent of the batch
# size, so batching never changes which neurons are chosen.
UPDATE_ROWS = 128
# How rows are computed: "linear" applies the transposed maps of the frozen model
# (trace.transposed, the default); "autograd" backpropagates replays of the prompt
# (trace.rows, the reference the tests and the benchmark compare against).
Engine = Literal["linear", "autograd"]


@dataclass
class Attribution:
    """The unpruned graph. Nodes, in this order: `neurons` (S selected, rows [layer, pos,
    idx]), the L x P rest buckets (layer-major), the P embeddings, the logits.

    adjacency[t, s]: direct effect of node s on node t (rows of buckets and embeddings are 0).
    values: neuron activation / demeaned logit (0 for buckets and embeddings: they are sums
    of sources or inputs, not targets). constants: each computed row's bias terms, so that
    values[t] == adjacency[t].sum() + constants[t] for every computed row.
    total_effect: each neuron's and embedding's predicted effect on the weighted logits:
    a * d(logits)/d(a) with only the attention patterns frozen (norms and activations by
    their derivatives), so removing the source moves the weighted logit by about
    -total_effect in the real model (bench/README.md measures how well).
    """

    token_ids: list[int]
    n_layers: int
    d_mlp: int
    neurons: np.ndarray
    logits: LogitTargets
    adjacency: np.ndarray
    values: np.ndarray
    constants: np.ndarray
    computed: np.ndarray
    total_effect: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    bos: bool = False

    @property
    def n_positions(self) -> int:
        return len(self.token_ids)

    @property
    def rest_offset(self) -> int:
        return len(self.neurons)

    @property
    def embedding_offset(self) -> int:
        return self.rest_offset + self.n_layers * self.n_positions

    @property
    def logit_offset(self) -> int:
        return self.embedding_offset + self.n_positions

    @property
    def n_nodes(self) -> int:
        return self.logit_offset + len(self.logits.token_ids)


class _Pool:
    """The candidate neurons and the column layout of stored rows:
    [pool (K) | remainder outside the pool per (layer, pos) (L*P) | embeddings (P)]."""

    def __init__(self, flat: torch.Tensor, n_layers: int, n_pos: int, d_mlp: int) -> None:
        import torch

        self.flat = flat  # indices into [L, P, d_mlp]
        self.layer = flat // (n_pos * d_mlp)
        self.pos = (flat // d_mlp) % n_pos
        self.idx = flat % d_mlp
        self.site = self.layer * n_pos + self.pos
        self.n_layers, self.n_pos, self.d_mlp = n_layers, n_pos, d_mlp
        self.width = len(flat) + n_layers * n_pos + n_pos
        self._torch = torch
        self._buckets: list[list[_Bucket]] | None = None  # the linear engine's, on first use

    def contract(self, r: rowlib.Rows) -> np.ndarray:
        """Rows [B, width] in float64 from full per-layer rows."""
        torch = self._torch
        batch = r.embeddings.shape[0]
        full = torch.zeros(batch, self.n_layers, self.n_pos, self.d_mlp, dtype=r.embeddings.dtype)
        for layer, a in enumerate(r.neurons):
            if a is not None:
                full[:, layer] = a.detach().to("cpu")
        flat = full.reshape(batch, -1)
        pooled = flat[:, self.flat]
        totals = full.sum(-1).reshape(batch, -1)
        inside = torch.zeros_like(totals).index_add_(1, self.site, pooled)
        out = torch.cat([pooled, totals - inside, r.embeddings.detach().to("cpu")], dim=1)
        return out.double().numpy()

    def rows(self, maps: Transposed, t: rowlib.Targets) -> np.ndarray:
        """Rows [B, width] in float64 of targets `t` by the transposed maps. Only pool
        neurons' entries are formed, by batched products of the cotangent at each position
        with the write vectors of that position's pool neurons; a remainder is the site's
        sum g_out . (W_out a) minus its pool entries, so no row has all d_mlp entries."""
        th = self._torch
        if self._buckets is None:
            self._buckets = _buckets(self, maps)
        buckets = self._buckets
        batch, n_pos, k = len(t.layers), self.n_pos, len(self.flat)
        out = maps.x0.new_zeros(batch, self.width)

        def sink(layer: int, g_out: torch.Tensor, which: torch.Tensor) -> None:
            width = g_out.shape[1]
            rem = (g_out * maps.layers[layer].out[:width]).sum(-1)  # [n, P']
            for b in buckets[layer]:
                m = int((b.positions < width).sum())  # sites are sorted by position
                if not m:
                    continue
                sites = g_out[:, b.positions[:m]].transpose(0, 1)  # [m, n, d]
                entries = th.bmm(sites, b.writes[:m])  # [m, n, cap]
                rem = rem.index_add(1, b.positions[:m], -entries.sum(-1).T)
                flat = entries.transpose(0, 1).reshape(len(which), -1)
                j = int(b.starts[m])
                out[which[:, None], b.columns[None, :j]] = flat[:, b.slots[:j]]
            base = k + layer * n_pos
            out[which, base : base + width] = rem

        emb = maps.sweep(t, "cut", sink)
        base = k + self.n_layers * n_pos
        out[:, base : base + emb.shape[1]] = emb
        return out.double().cpu().numpy()


@dataclass
class _Bucket:
    """Pool sites (positions of one layer) with at most `cap` pool neurons each, padded to
    `cap`: writes [m, d, cap] (a_i W_out[:, i] per neuron, zero padding), the positions [m]
    (ascending), and per member neuron (ordered by site) its pool column and its slot in
    the flattened [m * cap] entries; starts[i]: members of the first i sites."""

    positions: torch.Tensor
    writes: torch.Tensor
    columns: torch.Tensor
    slots: torch.Tensor
    starts: torch.Tensor


def _buckets(pool: _Pool, maps: Transposed) -> list[list[_Bucket]]:
    """Per layer, the pool's sites grouped by size (next power of two), so every product
    is a dense batched matmul and padding at most doubles the work."""
    import torch

    dev = maps.x0.device
    out: list[list[_Bucket]] = []
    for layer in range(pool.n_layers):
        in_layer = (pool.layer == layer).nonzero().flatten()
        lay = maps.layers[layer]
        by_cap: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for p in pool.pos[in_layer].unique().tolist():
            members = in_layer[pool.pos[in_layer] == p]
            cap = 1 << (len(members) - 1).bit_length()
            by_cap.setdefault(cap, []).append((p, members))
        found = []
        for cap, sites in sorted(by_cap.items()):
            m = len(sites)
            writes = maps.x0.new_zeros(m, maps.x0.shape[-1], cap)
            columns, slots, starts = [], [], [0]
            for i, (p, members) in enumerate(sites):
                idx = pool.idx[members].to(dev)
                writes[i, :, : len(members)] = lay.w_out[:, idx] * lay.acts[p, idx]
                columns.append(members)
                slots.append(torch.arange(len(members)) + i * cap)
                starts.append(starts[-1] + len(members))
            found.append(
                _Bucket(
                    positions=torch.tensor([p for p, _ in sites], device=dev),
                    writes=writes,
                    columns=torch.cat(columns).to(dev),
                    slots=torch.cat(slots).to(dev),
                    starts=torch.tensor(starts),
                )
            )
        out.append(found)
    return out


def attribute(
    model: LoadedModel,
    ids: list[int],
    *,
    target: int | None = None,
    bos: bool = False,
    max_nodes: int = DEFAULT_MAX_NODES,
    candidates: int = DEFAULT_CANDIDATES,
    batch_size: int = DEFAULT_BATCH,
    alpha: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine = "linear",
) -> Attribution:
    """The attribution matrix for the next token after `ids` (see the module docstring).

    bos: ids[0] is a BOS the caller prepended (its neurons are never candidates).
    progress(done, total): called after each batch of neuron rows.
    engine: how rows are computed (see Engine); both give the same rows to float error.
    """
    import torch

    _check(max_nodes, candidates, batch_size, alpha)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    lin = Linearised(model, ids, alpha=alpha)
    effects = Transposed(lin)  # the intervention predictions use the maps in every engine
    maps = effects if engine == "linear" else None
    timings["record_s"] = time.perf_counter() - t0
    n_layers, n_pos, d_mlp = lin.n_layers, len(ids), model.d_mlp
    logits = choose(lin, target)
    n_logit = len(logits.token_ids)
    last = torch.full((n_logit,), n_pos - 1)
    logit_t = rowlib.Targets(
        layers=torch.full((n_logit,), n_layers),
        positions=last,
        reads=logits.reads.to(lin.clean.x0.dtype),
        constants=torch.zeros(n_logit, dtype=lin.clean.x0.dtype),
    )
    t_rows = time.perf_counter()
    direct = rowlib.direct_rows(lin, logit_t) if maps is None else maps.rows(logit_t, "cut")
    timings["logit_rows_s"] = time.perf_counter() - t_rows
    t_rows = time.perf_counter()
    total = rowlib.total_effects(lin, logit_t) if maps is None else maps.rows(logit_t, "live")
    effect = effects.rows(logit_t, "tangent", live_norms=True)
    timings["total_effects_s"] = time.perf_counter() - t_rows
    weights = torch.tensor(logits.weights, dtype=torch.float64)
    pool = _choose_pool(direct, total, weights, candidates, bos, n_layers, n_pos, d_mlp)
    timings["first_order_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    stored: dict[int, np.ndarray] = {}  # pool index → row
    logit_rows = pool.contract(direct)
    budget = min(max_nodes, len(pool.flat))
    step = UPDATE_ROWS
    chosen: list[int] = []
    while len(chosen) < budget:
        ranked = _rank(logit_rows, np.asarray(logits.weights), stored, pool, chosen)
        if not ranked:
            break
        batch = ranked[: min(step, budget - len(chosen))]
        computed = _neuron_rows(lin, pool, batch, batch_size, maps)
        for b, row in zip(batch, computed, strict=True):
            stored[b] = row
        chosen += batch
        if progress is not None:
            progress(len(chosen), budget)
    timings["rows_s"] = time.perf_counter() - t1
    timings["neuron_rows"] = float(len(chosen))

    t2 = time.perf_counter()
    out = _assemble(lin, pool, chosen, stored, logit_rows, logits, logit_t, effect, bos)
    timings["assemble_s"] = time.perf_counter() - t2
    out.timings = timings
    return out


def _check(max_nodes: int, candidates: int, batch_size: int, alpha: float) -> None:
    if not 0 <= max_nodes <= MAX_NODES_LIMIT:
        raise BadInput(f"max_nodes={max_nodes}: choose 0-{MAX_NODES_LIMIT} neuron rows")
    if candidates < 1:
        raise BadInput(f"candidates={candidates}: the pool needs at least one neuron")
    if batch_size < 1:
        raise BadInput(f"batch_size={batch_size}: at least 1 row per backward pass")
    if not 0.0 <= alpha <= 1.0:
        raise BadInput(f"alpha={alpha}: the gated split is a number in [0, 1]")


def _choose_pool(
    direct: rowlib.Rows,
    total: rowlib.Rows,
    weights: torch.Tensor,
    candidates: int,
    bos: bool,
    n_layers: int,
    n_pos: int,
    d_mlp: int,
) -> _Pool:
    """First-order ranking: sum over logits of weight x max(|direct|, |total|) effect."""
    import torch

    score = torch.zeros(n_layers, n_pos, d_mlp, dtype=torch.float64)
    for layer in range(n_layers):
        d, t = direct.neurons[layer], total.neurons[layer]
        assert d is not None and t is not None
        both = torch.maximum(d.detach().abs(), t.detach().abs()).double().cpu()
        score[layer] = (both * weights[:, None, None]).sum(0)
    if bos:
        score[:, 0] = 0
    flat = score.flatten()
    k = min(candidates, int((flat > 0).sum()))
    picked = flat.topk(k).indices if k else torch.zeros(0, dtype=torch.long)
    return _Pool(picked.sort().values, n_layers, n_pos, d_mlp)


def _rank(
    logit_rows: np.ndarray,
    weights: np.ndarray,
    stored: dict[int, np.ndarray],
    pool: _Pool,
    chosen: list[int],
) -> list[int]:
    """Unexpanded pool neurons by influence on the logits through the rows computed so far,
    strongest first (only those with some influence)."""
    keys = list(stored)
    mat = np.vstack([logit_rows, *(stored[k] for k in keys)]) if keys else logit_rows
    n_logit = len(logit_rows)
    # a computed neuron row's column → its row in `mat`
    row_of_col = {k: n_logit + i for i, k in enumerate(keys)}
    influence = propagate(normalise(mat), weights, row_of_col, n_logit)
    scores = influence[: len(pool.flat)].copy()
    if chosen:
        scores[np.asarray(chosen)] = -1.0
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order if scores[i] > 0]


def _neuron_rows(
    lin: Linearised,
    pool: _Pool,
    batch: list[int],
    batch_size: int,
    maps: Transposed | None = None,
) -> list[np.ndarray]:
    """Rows for pool neurons `batch` (in that order), computed in sweeps (or, without
    `maps`, backward passes) of at most `batch_size` targets of neighbouring positions: a
    sweep covers positions up to its last target's (attention is causal), starts at its
    deepest target's layer, and a target joins only at its own layer."""
    import torch

    order = sorted(
        range(len(batch)), key=lambda i: (int(pool.pos[batch[i]]), int(pool.layer[batch[i]]))
    )
    out: list[np.ndarray | None] = [None] * len(batch)
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        which = torch.tensor([batch[i] for i in part])
        t = _neuron_targets(lin, pool, which)
        rows = pool.contract(rowlib.direct_rows(lin, t)) if maps is None else pool.rows(maps, t)
        for j, i in enumerate(part):
            out[i] = rows[j]
    return [r for r in out if r is not None]


def _neuron_targets(lin: Linearised, pool: _Pool, which: torch.Tensor) -> rowlib.Targets:
    import torch

    layers, pos, idx = pool.layer[which], pool.pos[which], pool.idx[which]
    reads = torch.empty(len(which), lin.clean.x0.shape[-1], dtype=lin.clean.x0.dtype)
    consts = torch.empty(len(which), dtype=lin.clean.x0.dtype)
    for layer in sorted(set(layers.tolist())):
        m = (layers == layer).nonzero().flatten()
        r, c = lin.read_vectors(layer, pos[m], idx[m])
        reads[m], consts[m] = r.detach().cpu(), c.detach().cpu()
    return rowlib.Targets(layers=layers, positions=pos, reads=reads, constants=consts)


def _assemble(
    lin: Linearised,
    pool: _Pool,
    chosen: list[int],
    stored: dict[int, np.ndarray],
    logit_rows: np.ndarray,
    logits: LogitTargets,
    logit_t: rowlib.Targets,
    predicted: rowlib.Rows,
    bos: bool,
) -> Attribution:
    """Dense adjacency over the final nodes, unselected pool neurons folded into buckets."""
    import torch

    n_layers, n_pos, d_mlp = pool.n_layers, pool.n_pos, pool.d_mlp
    sel = sorted(chosen, key=lambda i: int(pool.flat[i]))
    n_sel, n_logit, n_site = len(sel), len(logits.token_ids), n_layers * n_pos
    n_nodes = n_sel + n_site + n_pos + n_logit
    k = len(pool.flat)
    # pool column → node column
    col_map = (pool.site.numpy() + n_sel).astype(np.int64)
    col_map[np.asarray(sel, dtype=np.int64)] = np.arange(n_sel)
    rest = np.arange(n_site) + n_sel
    emb = np.arange(n_pos) + n_sel + n_site

    def place(row: np.ndarray) -> np.ndarray:
        out = np.zeros(n_nodes)
        np.add.at(out, col_map, row[:k])
        out[rest] += row[k : k + n_site]
        out[emb] += row[k + n_site :]
        return out

    adjacency = np.zeros((n_nodes, n_nodes))
    values = np.zeros(n_nodes)
    constants = np.zeros(n_nodes)
    computed = np.zeros(n_nodes, dtype=bool)
    sel_t = torch.tensor(sel, dtype=torch.long)
    neurons = torch.stack([pool.layer[sel_t], pool.pos[sel_t], pool.idx[sel_t]], 1).numpy()
    if n_sel:
        t = _neuron_targets(lin, pool, sel_t)
        constants[:n_sel] = rowlib.constants(lin, t).double().numpy()
        acts = lin.clean.acts
        values[:n_sel] = [float(acts[la][0, p, i]) for la, p, i in neurons]
        for j, i in enumerate(sel):
            adjacency[j] = place(stored[i])
        computed[:n_sel] = True
    lo = n_sel + n_site + n_pos
    constants[lo:] = rowlib.constants(lin, logit_t).double().numpy()
    values[lo:] = rowlib.values(lin, logit_t).detach().double().numpy()
    for j in range(n_logit):
        adjacency[lo + j] = place(logit_rows[j])
    computed[lo:] = True
    effect = np.zeros(n_nodes)
    weights = torch.tensor(logits.weights, dtype=torch.float64)
    for j, (la, p, i) in enumerate(neurons):
        t_row = predicted.neurons[la]
        assert t_row is not None
        effect[j] = float((t_row[:, p, i].detach().double().cpu() * weights).sum())
    effect[emb] = (predicted.embeddings.detach().double().cpu() * weights[:, None]).sum(0).numpy()
    return Attribution(
        token_ids=[int(i) for i in lin.ids[0].tolist()],
        n_layers=n_layers,
        d_mlp=d_mlp,
        neurons=neurons.reshape(-1, 3).astype(np.int64),
        logits=logits,
        adjacency=adjacency,
        values=values,
        constants=constants,
        computed=computed,
        total_effect=effect,
        bos=bos,
    )
