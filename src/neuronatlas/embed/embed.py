"""The embed stage: a vector for every explanation whose text has no vector yet.

Incremental: an explanation is embedded again only when its text changed (digest) or it has no
vector. One embedder per atlas: vectors from another one are refused (`MixedEmbedders`) unless
`reembed` replaces them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from neuronatlas.embed.embedders import DEFAULT_EMBEDDER, get_embedder
from neuronatlas.errors import BadInput
from neuronatlas.store import AtlasWriter
from neuronatlas.store import embed as store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of one embed run (saved in `runs.config`)."""

    #: Registered name (all-mpnet-base-v2, all-MiniLM-L6-v2), local folder or hub id;
    #: None = the one the atlas already uses, else all-mpnet-base-v2.
    embedder: str | None = None
    #: Texts per forward pass of the embedder.
    batch_size: int = 64
    #: Embed every explanation of every source, not just each neuron's primary one.
    all_explanations: bool = False
    #: Delete every stored vector (and the map) first: needed to switch embedders.
    reembed: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise BadInput(f"--batch-size must be ≥ 1, not {self.batch_size}")


@dataclass
class EmbedResult:
    """What an embed run did."""

    embedder: str
    embedded: int
    unchanged: int
    total: int


def _atlas_embedder(writer: AtlasWriter, reembed: bool) -> str:
    """The spec of the embedder whose vectors the atlas holds (default when none/reembed)."""
    if not reembed and store.stored_embedders(writer.conn):
        spec = writer.meta().get("embedder_spec")
        if spec:
            return spec
    return DEFAULT_EMBEDDER


#: progress(done, total) after each batch.
Progress = Callable[[int, int], None]


def embed_atlas(
    db: str | Path, config: EmbedConfig | None = None, progress: Progress | None = None
) -> EmbedResult:
    """Embed the atlas's explanations that lack a current vector; return the counts."""
    config = config or EmbedConfig()
    with AtlasWriter(db) as writer:
        conn = writer.conn
        embedder = get_embedder(config.embedder or _atlas_embedder(writer, config.reembed))
        if config.reembed:
            removed = store.delete_embeddings(conn)
            log.info("removed %d vectors before re-embedding", removed)
        store.check_embedder(conn, embedder.name)
        todo, total = store.explanations_to_embed(
            conn, embedder.name, primary_only=not config.all_explanations
        )
        unchanged = total - len(todo)
        if not todo:
            return EmbedResult(embedder.name, 0, unchanged, total)
        run = writer.begin_run("embed", asdict(config) | {"embedder_name": embedder.name})
        scope = {store.EMBED_SCOPE_KEY: "all"} if config.all_explanations else {}
        writer.set_meta({"embedder": embedder.name, "embedder_spec": embedder.spec} | scope)
        done = 0
        status = "failed"
        try:
            # Many neurons share an explanation text (e.g. top-token ones): sorting by digest
            # puts equal texts in the same chunk, and each distinct text is encoded once.
            todo.sort(key=lambda row: row[2])
            chunk = max(config.batch_size * 8, 256)
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                distinct = list(dict.fromkeys(text for _, text, _ in part))
                encoded = dict(
                    zip(distinct, embedder.encode(distinct, config.batch_size), strict=False)
                )
                store.write_embeddings(
                    conn,
                    embedder.name,
                    [(eid, digest, encoded[text]) for eid, text, digest in part],
                )
                done += len(part)
                if progress is not None:
                    progress(done, len(todo))
            status = "done"
        finally:
            writer.end_run(run, status)
    return EmbedResult(embedder.name, done, unchanged, total)
