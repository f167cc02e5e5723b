-- 009: read data the explorer precomputes at build time (issue 14): each neuron's nearest
-- neighbours by explanation embedding and by shared peak tokens, so a neuron page reads them
-- with one primary-key range instead of a vector search and a token-overlap join per request.

CREATE TABLE IF NOT EXISTS similar_neurons (
    neuron_id     TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('embedding', 'tokens')),
    rank          INTEGER NOT NULL,          -- 0 = most similar
    other_id      TEXT NOT NULL,
    similarity    REAL NOT NULL,             -- cosine (embedding) or weighted Jaccard (tokens)
    shared_tokens TEXT,                      -- JSON list of the shared peak tokens (tokens)
    PRIMARY KEY (neuron_id, kind, rank)
) WITHOUT ROWID;

-- One row per kind that was precomputed, with how many neighbours each neuron got. A stage
-- that changes the inputs (new embeddings, a rebuilt token index) deletes its kind's rows.
CREATE TABLE IF NOT EXISTS similar_state (
    kind       TEXT PRIMARY KEY CHECK (kind IN ('embedding', 'tokens')),
    k          INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
