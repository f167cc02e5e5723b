-- LLM explanations and the scorers that check every explanation (issue 12): the scores of each
-- explanation by each scorer, where an LLM explanation came from, and the LLM response cache.

-- One score of one explanation by one scorer and judge (the LLM or embedder that scored it:
-- scores by two judges are different measurements). A failed scoring is never a row.
CREATE TABLE explanation_scores (
  explanation_id INTEGER NOT NULL REFERENCES explanations(id) ON DELETE CASCADE,
  scorer         TEXT NOT NULL,          -- 'embedding' | 'simulation' | 'detection' | 'fuzzing'
  judge          TEXT NOT NULL,          -- embedder name or LLM model id
  score          REAL NOT NULL,
  details        TEXT NOT NULL,          -- JSON: method, counts requested/parsed/failed, ...
  run_id         INTEGER,
  created_at     TEXT NOT NULL,
  PRIMARY KEY (explanation_id, scorer, judge)
) WITHOUT ROWID;
CREATE INDEX explanation_scores_scorer ON explanation_scores(scorer, score);

-- A score belongs to the text it scored: a changed text drops its scores.
CREATE TRIGGER explanation_scores_text AFTER UPDATE OF text ON explanations
WHEN old.text <> new.text BEGIN
  DELETE FROM explanation_scores WHERE explanation_id = old.id;
END;

-- Where an LLM-written explanation came from: the model, the prompt's digest, the settings.
CREATE TABLE llm_explanations (
  explanation_id INTEGER PRIMARY KEY REFERENCES explanations(id) ON DELETE CASCADE,
  model          TEXT NOT NULL,          -- the client's model id, e.g. 'smollm2-135m-instruct'
  endpoint       TEXT NOT NULL,          -- 'local' or the base URL (never a key)
  prompt_digest  TEXT NOT NULL,
  settings       TEXT NOT NULL,          -- JSON of the explainer settings
  usage          TEXT NOT NULL,          -- JSON {prompt_tokens, completion_tokens, cost, seconds}
  run_id         INTEGER,
  created_at     TEXT NOT NULL
);

-- LLM answers by digest of (model, messages, parameters): a rerun asks nothing twice.
CREATE TABLE llm_cache (
  digest     TEXT PRIMARY KEY,
  model      TEXT NOT NULL,
  response   TEXT NOT NULL,              -- JSON of the parsed answer (text, logprobs, usage)
  created_at TEXT NOT NULL
) WITHOUT ROWID;

-- The primary explanation is now the best-scored one: the highest score of the atlas's
-- ranking scorer (meta 'primary_scorer', default 'embedding', the scorer that runs on every
-- atlas), then the source order as before. LLM sources are spelled 'llm:<model>'.
DROP VIEW primary_explanations;
CREATE VIEW primary_explanations AS
SELECT e.* FROM explanations e
WHERE e.id = (
  SELECT x.id FROM explanations x WHERE x.neuron_id = e.neuron_id
  ORDER BY (SELECT max(s.score) FROM explanation_scores s WHERE s.explanation_id = x.id
            AND s.scorer = coalesce((SELECT value FROM meta WHERE key = 'primary_scorer'),
                                    'embedding')) IS NULL,
           (SELECT max(s.score) FROM explanation_scores s WHERE s.explanation_id = x.id
            AND s.scorer = coalesce((SELECT value FROM meta WHERE key = 'primary_scorer'),
                                    'embedding')) DESC,
           CASE WHEN x.source = 'openai' THEN 0 WHEN x.source LIKE 'llm%' THEN 1
                WHEN x.source = 'n2g' THEN 2 ELSE 3 END,
           x.position
  LIMIT 1);
