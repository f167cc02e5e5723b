"""Finding neurons for a query: semantic, token and full-text search.

Public API, one module each (imported on demand so `neuronatlas --help` stays fast):

- `semantic.semantic_search(conn, query, k=10, embedder=None)`: a query's embedding against
  the neurons' explanation vectors (`vector_index.py`: exact or HNSW top-k over them).
- `token_search.token_search(conn, text, k=10)`: neurons whose top records peak on the
  text's tokens (the token index `neuronatlas index` builds).
- `fulltext.fulltext_search(conn, query, k=10)`: SQLite FTS5 over explanations and excerpts.

Results are dicts with id, layer, neuron, explanation, score (the explanation's
ev_correlation_score or None) and similarity.
"""
