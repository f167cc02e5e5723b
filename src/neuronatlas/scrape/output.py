"""A finished scrape state → the atlas: one `NeuronData` per neuron (records 'top', 'random',
'quantile_i', moments, quantile boundaries; source 'scrape'), plus the atlas's provenance.

Neurons are prepared in chunks and each chunk is written in one transaction. `write_atlas`
hands the store a chunk's records as arrays (`store.rows.NeuronBlock`): the state's float32
vectors go to the value encoder as they are, and each window's tokens JSON and digest are
made once, however many records show it (`neuron_data` gives the same content as lists).
The token index is made from the same arrays (`_TopPeaks`), not read back out of the stored
excerpts' JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from neuronatlas.scrape.readout import layer_readout, neuron_results, quantile_picks
from neuronatlas.scrape.state import ScrapeState
from neuronatlas.store import AtlasWriter, NeuronData, Record
from neuronatlas.store.rows import NeuronBlock, excerpt_digest, prepare_block
from neuronatlas.store.search import token_index_rows, write_token_index
from neuronatlas.version import __version__

if TYPE_CHECKING:
    from neuronatlas.corpus import BosPolicy
    from neuronatlas.models import LoadedModel
    from neuronatlas.scrape.settings import ScrapeSettings

SOURCE = "scrape"


def neuron_data(
    state: ScrapeState, layer: int, token_strings: Callable[[list[int]], list[str]]
) -> Iterator[NeuronData]:
    """The store's view of every neuron of `layer` in the state."""
    for r in neuron_results(state, layer, token_strings):
        yield NeuronData(
            layer=layer,
            neuron=r["neuron"],
            source=SOURCE,
            records={
                cat: [Record(tokens, acts) for tokens, acts in recs]
                for cat, recs in r["records"].items()
            },
            mean=r["mean"],
            variance=r["variance"],
            skewness=r["skewness"],
            kurtosis=r["kurtosis"],
            quantile_boundaries=r["quantile_boundaries"],
        )


class _Excerpts:
    """Window id → its excerpt's digest, the tokens JSON made once per window; `fresh` hands
    each excerpt to the writer once, in the order records first name it."""

    def __init__(self, state: ScrapeState, token_strings: Callable[[list[int]], list[str]]):
        self.state = state
        self.token_strings = token_strings
        self.encode = msgspec.json.Encoder().encode
        self.digest: dict[int, int] = {}  # window id → digest
        self.text: dict[int, str] = {}  # digest → tokens JSON, until handed over
        self.written: set[int] = set()  # digests handed over
        #: digest → per position, the token a peak there counts for (see `peak_tokens`)
        self.peak_token: dict[int, list[str | None]] = {}

    def digests(self, wids: np.ndarray) -> list[int]:
        """The digest of each window in `wids` (made for windows not seen yet)."""
        ids = wids.tolist()
        new = sorted({w for w in ids if w not in self.digest})
        if new:
            tokens = self.state.windows.lookup(np.array(new, dtype=np.int64))
            for w, row in zip(new, tokens, strict=True):
                strings = self.token_strings(row.tolist())
                data = self.encode(strings)
                d = self.digest[w] = excerpt_digest(data)
                if d not in self.written:
                    self.text[d] = data.decode("utf-8")
                if d not in self.peak_token:
                    self.peak_token[d] = peak_tokens(strings)
        return [self.digest[w] for w in ids]

    def fresh(self, digests: list[int]) -> list[tuple[int, str]]:
        """(digest, tokens JSON) of the excerpts in `digests` not handed over yet."""
        out = []
        for d in dict.fromkeys(digests):
            if d not in self.written:
                self.written.add(d)
                out.append((d, self.text.pop(d)))
        return out


def peak_tokens(strings: list[str]) -> list[str | None]:
    """Per position of an excerpt, the token a peak there counts for in the token index: the
    token, or on a later piece of a split character ("") the nearest non-empty token before
    it (None at the start) — what `store.search.rebuild_token_index` reads from the JSON."""
    out: list[str | None] = []
    last = None
    for s in strings:
        if s != "":
            last = s
        out.append(last)
    return out


class _TopPeaks:
    """Every top record's neuron, peak token and maximum, block by block, for the token index
    (`store.search.token_index_rows`)."""

    def __init__(self, excerpts: _Excerpts):
        self.excerpts = excerpts
        self.neuron: list[str] = []
        self.token: list[str | None] = []
        self.act: list[float] = []

    def add(self, block: NeuronBlock, records: list[tuple]) -> None:
        """The block's top records with a peak and a positive maximum (rank order)."""
        peak_token = self.excerpts.peak_token
        for i, cat in enumerate(block.category):
            if cat != "top":
                continue
            nid, _, _, digest, _, _, top, peak = records[i]
            if peak is not None and top > 0:
                self.neuron.append(nid)
                self.token.append(peak_token[digest][peak])
                self.act.append(top)

    def rows(self) -> list[tuple[str, str, float, int, float]]:
        return token_index_rows(self.neuron, self.token, self.act)


def neuron_blocks(
    state: ScrapeState, layer: int, excerpts: _Excerpts, chunk: int
) -> Iterator[NeuronBlock]:
    """The records of `layer`'s neurons, `chunk` neurons at a time, as arrays: the same
    records, in the same order, as `neuron_data` (top, random, quantile_0, … by rank)."""
    cfg = state.config
    layer_state, ls, can, bounds, stats = layer_readout(state, layer)
    names = ["top", "random"] + [f"quantile_{b}" for b in range(cfg.n_buckets)]
    for n0 in range(0, layer_state.d_mlp, chunk):
        n1 = min(n0 + chunk, layer_state.d_mlp)
        owner, cat, rank, wid, vec = [], [], [], [], []
        for c, key in enumerate(("top", "rnd")):
            w = can[f"{key}_wid"][n0:n1]
            valid = w >= 0
            where = np.nonzero(valid)
            owner.append(where[0])
            cat.append(np.full(len(where[0]), c))
            rank.append((np.cumsum(valid, axis=1) - 1)[where])
            wid.append(w[where])
            vec.append(can[f"{key}_vec"][n0:n1][where])
        if cfg.quantile_k:
            q_owner, q_cat, q_rank, q_slot, q_j = [], [], [], [], []
            for n in range(n0, n1):
                for b, picks in enumerate(quantile_picks(ls, cfg, n, bounds[n])):
                    for r, (qb, j) in enumerate(picks):
                        q_owner.append(n - n0)
                        q_cat.append(2 + b)
                        q_rank.append(r)
                        q_slot.append(qb)
                        q_j.append(j)
            q_n = np.array(q_owner, dtype=np.intp) + n0
            q_s, q_i = np.array(q_slot, dtype=np.intp), np.array(q_j, dtype=np.intp)
            owner.append(np.array(q_owner, dtype=np.intp))
            cat.append(np.array(q_cat, dtype=np.intp))
            rank.append(np.array(q_rank, dtype=np.intp))
            wid.append(ls.q_wid[q_n, q_s, q_i])
            vec.append(ls.q_vec[q_n, q_s, q_i])
        owners, cats, ranks = np.concatenate(owner), np.concatenate(cat), np.concatenate(rank)
        order = np.lexsort((ranks, cats, owners))
        values = np.concatenate([v.astype(np.float32, copy=False) for v in vec])[order]
        yield NeuronBlock(
            layer=layer,
            neurons=list(range(n0, n1)),
            source=SOURCE,
            owner=owners[order],
            category=[names[c] for c in cats[order].tolist()],
            rank=ranks[order].tolist(),
            digest=excerpts.digests(np.concatenate(wid)[order].astype(np.int64)),
            values=values,
            mean=stats["mean"][n0:n1],
            variance=stats["variance"][n0:n1],
            skewness=stats["skewness"][n0:n1],
            kurtosis=stats["kurtosis"][n0:n1],
            quantile_boundaries=bounds[n0:n1],
        )


def provenance(
    settings: ScrapeSettings,
    model: LoadedModel,
    corpus: dict,
    policy: BosPolicy,
    layers: list[int],
    state: ScrapeState,
) -> dict:
    """Atlas-wide facts of a scrape (stored in `meta`)."""
    from pathlib import Path as _P

    spec = settings.model
    if spec != "default" and _P(spec).expanduser().is_dir():
        spec = str(_P(spec).expanduser().resolve())
    return {
        "model_id": model.name,
        "model_path": spec,
        "model_revision": model.revision or "",
        "architecture": model.architecture,
        "n_layers": model.n_layers,
        "d_mlp": model.d_mlp,
        "scraped_layers": layers,
        "hook_points": [model.hook_name(L) for L in layers],
        "hook_module": f"{model.arch.blocks}.{{L}}.{model.arch.projection} (input)",
        "data_source": SOURCE,
        "corpus": corpus,
        "tokens": state.windows_seen * state.config.context,
        "windows": state.windows_seen,
        "context": state.config.context,
        "dtype": settings.dtype,
        "bos_policy": policy.describe(),
        "stats": state.config.to_dict(),
        "moments_note": "population variance and skewness, excess kurtosis, over all scored "
        "tokens (BOS positions excluded)",
        "code_version": __version__,
    }


def write_atlas(
    state: ScrapeState,
    model: LoadedModel,
    db: str | Path,
    meta: dict,
    run_config: dict,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 1024,
) -> int:
    """Write every neuron of the state into `db`; returns the number of neurons written."""
    from neuronatlas.store.writer import now

    total = sum(ls.d_mlp for ls in state.layers.values())
    done = 0
    with AtlasWriter(db) as writer:
        if "created_at" not in writer.meta():
            meta = {**meta, "created_at": now()}
        writer.set_meta(meta)
        run = writer.begin_run("scrape", run_config)
        try:
            excerpts = _Excerpts(state, model.record_strings)
            peaks = _TopPeaks(excerpts)
            for layer in sorted(state.layers):
                for block in neuron_blocks(state, layer, excerpts, chunk):
                    prepared = prepare_block(block)
                    done += writer.write_block(prepared, excerpts.fresh(block.digest))
                    peaks.add(block, prepared.records)
                    if on_progress:
                        on_progress(done, total)
            write_token_index(writer.conn, peaks.rows())  # `neuronatlas tokens` answers from it
        except BaseException:
            writer.end_run(run, "failed")
            raise
        writer.end_run(run, "done")
    return done
