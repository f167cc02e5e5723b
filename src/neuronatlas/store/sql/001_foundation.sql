-- Foundation schema: the seed-compatible `neurons` and `activations` relations as views over
-- compact tables. Read with any SQLite client; no custom functions are needed.

-- Atlas-wide facts: model id/revision, data source, activation (GELU) note, sizes.
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per run of a stage (import, scrape, n2g, embed, map): its settings and provenance.
CREATE TABLE runs (
  id           INTEGER PRIMARY KEY,
  stage        TEXT NOT NULL,
  config       TEXT NOT NULL,          -- JSON of the stage's settings
  code_version TEXT NOT NULL,
  started_at   TEXT NOT NULL,
  finished_at  TEXT,
  status       TEXT NOT NULL DEFAULT 'running'   -- running | done | partial | failed
);

-- Per-neuron activation statistics. A row here means the neuron's records are complete:
-- writers insert it in the same transaction as the records.
CREATE TABLE neuron_info (
  id                  TEXT PRIMARY KEY,   -- L05N0123
  layer               INTEGER NOT NULL,
  neuron              INTEGER NOT NULL,
  mean                REAL,
  variance            REAL,
  skewness            REAL,
  kurtosis            REAL,
  max_activation      REAL,               -- max over all stored records
  quantile_boundaries TEXT,               -- JSON array of floats, or NULL
  source              TEXT NOT NULL,      -- 'openai' | 'scrape'
  UNIQUE (layer, neuron)
) WITHOUT ROWID;

-- Each distinct excerpt once. id = first 8 bytes of blake2b(tokens JSON) as a signed integer,
-- so writers need no lookup to deduplicate.
CREATE TABLE excerpts (
  id     INTEGER PRIMARY KEY,
  tokens TEXT NOT NULL                   -- compact JSON array of token strings
);

-- One activation record of one neuron: an excerpt and the neuron's activation on each token.
-- A rowid table on purpose: its rows (~1.3 KB of values for 64 tokens) exceed what a
-- WITHOUT ROWID (index b-tree) page keeps inline (~1 KB at 4 KiB pages), and each spill took
-- a whole overflow page: 3.5x the payload on disk and 3x slower writes.
CREATE TABLE records (
  neuron_id         TEXT NOT NULL,
  category          TEXT NOT NULL,       -- 'top' | 'random' | 'quantile_0' ...
  rank              INTEGER NOT NULL,    -- order within the category (top: strongest first)
  excerpt_id        INTEGER NOT NULL,
  activation_values TEXT NOT NULL,       -- compact JSON array of floats (exact, shortest repr)
  max_activation    REAL,                -- NULL when every value is NULL (NaN in the source)
  peak_index        INTEGER,
  PRIMARY KEY (neuron_id, category, rank)
);

-- Several explanations per neuron, each with OpenAI's three scores and its source.
CREATE TABLE explanations (
  id                           INTEGER PRIMARY KEY,
  neuron_id                    TEXT NOT NULL,
  source                       TEXT NOT NULL,   -- 'openai' | 'n2g' | 'top-tokens' | 'llm'
  position                     INTEGER NOT NULL,-- order within the source (0 = the source's best)
  text                         TEXT NOT NULL,   -- exactly as the source wrote it
  ev_correlation_score         REAL,
  rsquared_score               REAL,
  absolute_dev_explained_score REAL,
  created_at                   TEXT NOT NULL,
  UNIQUE (neuron_id, source, position)
);

-- Sentence embedding of an explanation: little-endian float32 unit vector.
CREATE TABLE embeddings (
  explanation_id INTEGER PRIMARY KEY REFERENCES explanations(id) ON DELETE CASCADE,
  embedder       TEXT NOT NULL,
  text_digest    TEXT NOT NULL,          -- digest of the embedded text: re-embed when it changes
  vector         BLOB NOT NULL
);

-- Which explanation a neuron shows first: OpenAI's, then an LLM's, then N2G's, then top tokens.
CREATE VIEW primary_explanations AS
SELECT e.* FROM explanations e
WHERE e.id = (
  SELECT x.id FROM explanations x WHERE x.neuron_id = e.neuron_id
  ORDER BY CASE x.source WHEN 'openai' THEN 0 WHEN 'llm' THEN 1 WHEN 'n2g' THEN 2 ELSE 3 END,
           x.position
  LIMIT 1);

-- The seed notebook's `neurons` relation. explanation_embedding is a float32 BLOB.
CREATE VIEW neurons AS
SELECT n.id                            AS id,
       n.layer                         AS layer_index,
       n.neuron                        AS neuron_index,
       e.text                          AS explanation_text,
       e.ev_correlation_score          AS explanation_ev_correlation_score,
       e.rsquared_score                AS explanation_rsquared_score,
       e.absolute_dev_explained_score  AS explanation_absolute_dev_explained_score,
       n.mean                          AS activation_mean,
       n.variance                      AS activation_variance,
       n.skewness                      AS activation_skewness,
       n.kurtosis                      AS activation_kurtosis,
       b.vector                        AS explanation_embedding
FROM neuron_info n
LEFT JOIN primary_explanations e ON e.neuron_id = n.id
LEFT JOIN embeddings b ON b.explanation_id = e.id;

-- The seed notebook's `activations` relation, records in rank order within a category.
CREATE VIEW activations AS
SELECT r.neuron_id         AS neuron_id,
       r.category          AS category,
       x.tokens            AS tokens,
       r.activation_values AS activation_values
FROM records r JOIN excerpts x ON x.id = r.excerpt_id
ORDER BY r.neuron_id, r.category, r.rank;
