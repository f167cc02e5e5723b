"""Explanation embeddings, the neuron map and search (semantic, token, full-text, similar).

Public API, one module each (imported on demand so `neuronatlas --help` stays fast):

- `embed.embed_atlas(db, EmbedConfig)`: vectors for new or changed explanations.
- `embedders.get_embedder(name_or_dir)`, `register_embedder(name, factory)`.
- `search.semantic_search(conn, query, k=10, embedder=None)`.
- `map.build_map(db, MapConfig)`; stored points via `neuronatlas.store.embed.map_points(conn)`,
  the fine clusters via `cluster_labels(conn)`, the coarse ones via `coarse_clusters(conn)`
  (`hierarchy.py` builds the two levels, `coherence.py` measures them).
- `tokens.token_search(conn, text, k=10)`; `fulltext.fulltext_search(conn, query, k=10)`.
- `similar.similar_neurons(conn, neuron_id, k=10, model=None)`.

Search results are dicts with id, layer, neuron, explanation, score (the explanation's
ev_correlation_score or None) and similarity.
"""
