-- Embeddings, the neuron map and the search indexes (issue 5). Vectors themselves live in
-- `embeddings` (001); this migration adds what is derived from them and from the records.

-- The map: one point per neuron whose primary explanation is embedded. cluster -1 = noise.
CREATE TABLE map_points (
  neuron_id      TEXT PRIMARY KEY,
  explanation_id INTEGER NOT NULL,        -- the embedded explanation the point was made from
  x              REAL NOT NULL,
  y              REAL NOT NULL,
  cluster        INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per cluster of the map: its c-TF-IDF label, size and centre (for placing the label).
CREATE TABLE map_clusters (
  cluster INTEGER PRIMARY KEY,
  label   TEXT NOT NULL,
  words   TEXT NOT NULL,                  -- JSON [[word, weight], ...], most characteristic first
  size    INTEGER NOT NULL,
  x       REAL NOT NULL,
  y       REAL NOT NULL
);

-- The parameters the stored map was made with (one row: the map is replaced as a whole).
CREATE TABLE map_config (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  embedder   TEXT NOT NULL,
  config     TEXT NOT NULL,               -- JSON of MapConfig (neighbors, min_dist, seed, ...)
  n_points   INTEGER NOT NULL,
  n_clusters INTEGER NOT NULL,
  run_id     INTEGER,
  created_at TEXT NOT NULL
);

-- Token -> neurons whose top records peak on that token. `activation` is the strongest such
-- peak, `hits` how many top records peak there, `share` the fraction of the neuron's top-record
-- peak mass (sum of positive peaks) that falls on this token: 1.0 = every top record peaks here.
CREATE TABLE token_index (
  token      TEXT NOT NULL,
  neuron_id  TEXT NOT NULL,
  activation REAL NOT NULL,
  hits       INTEGER NOT NULL,
  share      REAL NOT NULL,
  PRIMARY KEY (token, neuron_id)
) WITHOUT ROWID;
CREATE INDEX token_index_neuron ON token_index(neuron_id, token);

-- Full-text search over explanation text. External content: the text stays in `explanations`;
-- triggers keep the index in step with every write.
CREATE VIRTUAL TABLE explanations_fts USING fts5(
  text, content='explanations', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER explanations_fts_ai AFTER INSERT ON explanations BEGIN
  INSERT INTO explanations_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER explanations_fts_ad AFTER DELETE ON explanations BEGIN
  INSERT INTO explanations_fts(explanations_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER explanations_fts_au AFTER UPDATE OF text ON explanations BEGIN
  INSERT INTO explanations_fts(explanations_fts, rowid, text) VALUES ('delete', old.id, old.text);
  INSERT INTO explanations_fts(rowid, text) VALUES (new.id, new.text);
END;
INSERT INTO explanations_fts(explanations_fts) VALUES ('rebuild');

-- Full-text search over the text of each neuron's top records: one document per neuron
-- (rowid = layer * 1048576 + neuron), contentless (the excerpts are not stored twice).
-- Rebuilt by `store.search.rebuild_excerpt_fulltext` (called with the token index).
CREATE VIRTUAL TABLE excerpts_fts USING fts5(text, content='', tokenize='unicode61');

-- What the token index and excerpt FTS were built from, to tell when they are stale.
CREATE TABLE search_index_state (
  name        TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  built_at    TEXT NOT NULL
) WITHOUT ROWID;
