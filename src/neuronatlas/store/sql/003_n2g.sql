-- Neuron2Graph: one graph (trie) per neuron with its settings, mask token and build stats, and
-- its evaluation on held-out records. The N2G explanation text lives in `explanations`
-- (source 'n2g'), like every other explanation.

CREATE TABLE n2g_graphs (
  neuron_id  TEXT PRIMARY KEY,          -- L05N0123
  run_id     INTEGER,                   -- runs.id of the n2g run that built it
  a_max      REAL NOT NULL,             -- the activation the trie's values are fractions of
  trie       TEXT NOT NULL,             -- JSON, see neuronatlas.n2g.trie.Trie.to_json
  settings   TEXT NOT NULL,             -- JSON of N2GSettings
  mask_token TEXT NOT NULL,             -- JSON {id, token, reason}: the saliency mask
  model      TEXT,                      -- model id/folder the graph was built with
  stats      TEXT NOT NULL,             -- JSON: examples used/skipped, lines, substitutes, ...
  created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE n2g_metrics (
  neuron_id                TEXT PRIMARY KEY REFERENCES n2g_graphs(neuron_id) ON DELETE CASCADE,
  precision                REAL,        -- firing tokens (>= fire_threshold * a_max), held out
  recall                   REAL,
  f1                       REAL,        -- NULL when nothing fires and nothing is predicted
  baseline_token_precision REAL,        -- token lookup fitted on the same train records
  baseline_token_recall    REAL,
  baseline_token_f1        REAL,
  baseline_ngram_precision REAL,        -- n-gram lookup (with back-off), same train records
  baseline_ngram_recall    REAL,
  baseline_ngram_f1        REAL,
  ev_correlation_score     REAL,        -- Pearson over all held-out tokens flattened
  n_test_records           INTEGER NOT NULL,
  n_test_tokens            INTEGER NOT NULL,
  n_firing_tokens          INTEGER NOT NULL
) WITHOUT ROWID;
