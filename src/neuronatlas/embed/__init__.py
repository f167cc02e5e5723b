"""Explanation embeddings: the embed stage and the sentence embedders behind it.

Public API, one module each (imported on demand so `neuronatlas --help` stays fast):

- `embed.embed_atlas(db, EmbedConfig)`: vectors for new or changed explanations.
- `embedders.get_embedder(name_or_dir)`, `register_embedder(name, factory)`; `mpnet.py`
  assembles the offline all-mpnet-base-v2, `bert_numpy.py` encodes a query without torch.

What the vectors are used for lives beside this package: `neuronatlas.search` (semantic,
token and full-text search), `neuronatlas.map` (the 2-D map and its clusters) and
`neuronatlas.relations` (similar neurons, weight relations, logit effects).
"""
