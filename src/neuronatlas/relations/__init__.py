"""How neurons relate to each other and to the vocabulary.

Public API (imported on demand so `neuronatlas --help` stays fast):

- `similar.similar_neurons(conn, neuron_id, k=10, model=None)`: by explanation meaning, by
  shared peak tokens and (with the model) by weights; `similar.precompute_similar(conn)`
  stores the first two for every neuron (`token_neighbours.py` does the token kind in blocks).
- `weights.py`: weight-based connections between neurons and each neuron's logit effect.
"""
