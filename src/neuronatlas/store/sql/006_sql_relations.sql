-- The seed's `neurons` and `activations` relations as fast as plain tables, and writable.
--
-- Schema 5 kept activation values as float32 BLOBs and rebuilt JSON text in the view, per
-- value, with string functions: ~0.15 ms a record, and `count(*)` took minutes because the
-- view's ORDER BY had to be run first. Now each record's values are stored as the JSON text
-- the relation shows (shortest float32 spellings: ~11 bytes a value, see store/values.py), so
-- the view is a plain join with no per-value work and no sort. `f32_json()` and `blob_to_json()` are Python functions that
-- store/migrations.py provides to this migration only; the views and triggers below use
-- built-in SQL alone, so any SQLite client can read and write them.

CREATE TABLE records_v6 (
  neuron_id         TEXT NOT NULL,
  category          TEXT NOT NULL,     -- 'top' | 'random' | 'quantile_0' ...
  rank              INTEGER NOT NULL,  -- order within the category (top: strongest first)
  excerpt_digest    INTEGER NOT NULL,  -- excerpts.digest
  activation_values TEXT NOT NULL,     -- compact JSON array, null where the source had none
  values_f32        INTEGER NOT NULL,  -- 1: float32 values in shortest float32 spellings (read
                                       -- back by rounding each to float32); 0: exact doubles
  max_activation    REAL,              -- NULL when every value is NULL (NaN in the source)
  peak_index        INTEGER,
  PRIMARY KEY (neuron_id, category, rank)
) WITHOUT ROWID;
INSERT INTO records_v6
SELECT neuron_id, category, rank, excerpt_digest,
       coalesce(blob_to_json(activation_f32), activation_json), activation_f32 IS NOT NULL,
       max_activation, peak_index
FROM records ORDER BY neuron_id, category, rank;
DROP VIEW activations;
DROP TABLE records;
ALTER TABLE records_v6 RENAME TO records;
-- ~24 bytes a record (category, neuron_id, rank): count(*) reads this instead of every page of
-- `records`, and a category's rows are found without a full scan, still in key order. Writers
-- add neurons in id order, so its inserts land at a few ends, not all over it.
CREATE INDEX records_category ON records(category);
DROP TABLE float32_scales;

-- Embeddings keep the library's float32 BLOB and gain the JSON text the seed's
-- `explanation_embedding` column holds. An embedding written through `neurons` (the seed's
-- UPDATE) has only its JSON text, exactly as written, and embedder 'external'.
CREATE TABLE embeddings_v6 (
  explanation_id INTEGER PRIMARY KEY REFERENCES explanations(id) ON DELETE CASCADE,
  embedder       TEXT NOT NULL,
  text_digest    TEXT,                 -- digest of the embedded text; NULL when written via SQL
  vector         BLOB,                 -- little-endian float32 unit vector; NULL when external
  vector_json    TEXT NOT NULL         -- compact JSON array (shortest float32 spellings)
);
INSERT INTO embeddings_v6
SELECT explanation_id, embedder, text_digest, vector, blob_to_json(vector) FROM embeddings;
DROP VIEW neurons;
DROP TABLE embeddings;
ALTER TABLE embeddings_v6 RENAME TO embeddings;

-- The seed notebook's `neurons` relation. explanation_embedding is compact JSON text;
-- explanation_embedding_f32 is the same vector as a float32 BLOB (NULL when external).
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
       b.vector_json                   AS explanation_embedding,
       b.vector                        AS explanation_embedding_f32
FROM neuron_info n
LEFT JOIN primary_explanations e ON e.neuron_id = n.id
LEFT JOIN embeddings b ON b.explanation_id = e.id;

-- The seed notebook's `activations` relation: one table in FROM, the excerpt's tokens a
-- lookup evaluated only when `tokens` is read. So `count(*)` is SQLite's b-tree count of
-- `records_category` (a join would have it look up every excerpt), and the other columns cost
-- a plain scan. No ORDER BY: one in a view hides the order from the outer query, which then sorts
-- again for GROUP BY neuron_id and runs the view in full for count(*). Rows come in the
-- records table's key order (neuron_id, category, rank): a scan follows it, and an outer
-- ORDER BY neuron_id, category or GROUP BY neuron_id is satisfied by that key, with no sort.
CREATE VIEW activations AS
SELECT r.neuron_id                                                         AS neuron_id,
       r.category                                                          AS category,
       (SELECT x.tokens FROM excerpts x WHERE x.digest = r.excerpt_digest) AS tokens,
       r.activation_values                                                 AS activation_values
FROM records r;

-- The seed's INSERT INTO neurons: the neuron, its explanation (source 'external', first of
-- that source) and, if given, its embedding.
CREATE TRIGGER neurons_insert INSTEAD OF INSERT ON neurons BEGIN
  INSERT INTO neuron_info(id, layer, neuron, mean, variance, skewness, kurtosis, source)
  VALUES (new.id, new.layer_index, new.neuron_index, new.activation_mean,
          new.activation_variance, new.activation_skewness, new.activation_kurtosis,
          'external');
  INSERT INTO explanations(neuron_id, source, position, text, ev_correlation_score,
                           rsquared_score, absolute_dev_explained_score, created_at)
  SELECT new.id, 'external', 0, new.explanation_text, new.explanation_ev_correlation_score,
         new.explanation_rsquared_score, new.explanation_absolute_dev_explained_score,
         strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')
  WHERE new.explanation_text IS NOT NULL;
  SELECT RAISE(ABORT, 'neurons: explanation_embedding must be a JSON array of numbers')
  WHERE new.explanation_embedding IS NOT NULL
    AND coalesce(json_type(new.explanation_embedding), '') <> 'array';
  INSERT INTO embeddings(explanation_id, embedder, text_digest, vector, vector_json)
  SELECT id, 'external', NULL, NULL, new.explanation_embedding FROM explanations
  WHERE neuron_id = new.id AND source = 'external' AND position = 0
    AND new.explanation_embedding IS NOT NULL;
END;

-- The seed's UPDATE neurons SET explanation_embedding = <json>: the vector of the neuron's
-- primary explanation, stored as written and tagged 'external' (NULL removes it).
CREATE TRIGGER neurons_update_embedding INSTEAD OF UPDATE OF explanation_embedding ON neurons
BEGIN
  SELECT RAISE(ABORT, 'neurons: explanation_embedding must be a JSON array of numbers')
  WHERE new.explanation_embedding IS NOT NULL
    AND coalesce(json_type(new.explanation_embedding), '') <> 'array';
  SELECT RAISE(ABORT, 'neurons: this neuron has no explanation to attach an embedding to')
  WHERE new.explanation_embedding IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM primary_explanations WHERE neuron_id = old.id);
  DELETE FROM embeddings
  WHERE new.explanation_embedding IS NULL
    AND explanation_id IN (SELECT id FROM primary_explanations WHERE neuron_id = old.id);
  INSERT OR REPLACE INTO embeddings(explanation_id, embedder, text_digest, vector, vector_json)
  SELECT id, 'external', NULL, NULL, new.explanation_embedding
  FROM primary_explanations WHERE neuron_id = old.id AND new.explanation_embedding IS NOT NULL;
END;

-- The seed's INSERT INTO activations: the next record of the neuron's category, its values
-- as written (exact doubles), its max and peak computed here, the neuron's max updated. The
-- excerpt gets a random 64-bit digest (no hash function in plain SQL): not shared with equal
-- excerpts, with the same collision odds as the library's digests.
CREATE TRIGGER activations_insert INSTEAD OF INSERT ON activations BEGIN
  SELECT RAISE(ABORT, 'activations: insert the neuron into neurons first')
  WHERE NOT EXISTS (SELECT 1 FROM neuron_info WHERE id = new.neuron_id);
  SELECT RAISE(ABORT, 'activations: tokens and activation_values must be JSON arrays')
  WHERE coalesce(json_type(new.tokens), '') <> 'array'
     OR coalesce(json_type(new.activation_values), '') <> 'array';
  INSERT INTO excerpts(digest, tokens) VALUES (random(), new.tokens);
  INSERT INTO records(neuron_id, category, rank, excerpt_digest, activation_values, values_f32,
                      max_activation, peak_index)
  SELECT new.neuron_id, new.category,
         (SELECT coalesce(max(rank) + 1, 0) FROM records
          WHERE neuron_id = new.neuron_id AND category = new.category),
         (SELECT digest FROM excerpts WHERE rowid = last_insert_rowid()),
         new.activation_values, 0,
         (SELECT max(value) FROM json_each(new.activation_values)
          WHERE type IN ('integer', 'real')),
         (SELECT key FROM json_each(new.activation_values)
          WHERE type IN ('integer', 'real') ORDER BY value DESC, key LIMIT 1);
  UPDATE neuron_info SET max_activation = (
    SELECT max(max_activation) FROM records WHERE neuron_id = new.neuron_id)
  WHERE id = new.neuron_id;
END;
