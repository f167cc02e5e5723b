"""The neuron map: explanation vectors laid out in 2-D, with a two-level cluster hierarchy.

Public API (imported on demand so `neuronatlas --help` stays fast):

- `neuron_map.build_map(db, MapConfig)`; stored points via
  `neuronatlas.store.embed.map_points(conn)`, the fine clusters via `cluster_labels(conn)`,
  the coarse ones via `coarse_clusters(conn)`.
- `hierarchy.py` builds the two levels, `labels.py` names their clusters, `coherence.py`
  measures them, `placement.py` places changed neurons without a refit.
"""
