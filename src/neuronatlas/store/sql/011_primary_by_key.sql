-- primary_explanations (007) looked up each candidate's score through the (scorer, score)
-- index: on an atlas whose explanations are all scored that scans every score of the scorer
-- for each candidate (23 ms for one neuron, minutes for a scan of `neurons`, at 36,864
-- neurons with 73,728 scores). The unary + keeps SQLite from using that index, so the
-- lookup is a primary-key seek (explanation_id, scorer). Same rows, same order as 007.
DROP VIEW primary_explanations;
CREATE VIEW primary_explanations AS
SELECT e.* FROM explanations e
WHERE e.id = (
  SELECT x.id FROM explanations x WHERE x.neuron_id = e.neuron_id
  ORDER BY (SELECT max(s.score) FROM explanation_scores s WHERE s.explanation_id = x.id
            AND +s.scorer = coalesce((SELECT value FROM meta WHERE key = 'primary_scorer'),
                                     'embedding')) IS NULL,
           (SELECT max(s.score) FROM explanation_scores s WHERE s.explanation_id = x.id
            AND +s.scorer = coalesce((SELECT value FROM meta WHERE key = 'primary_scorer'),
                                     'embedding')) DESC,
           CASE WHEN x.source = 'openai' THEN 0 WHEN x.source LIKE 'llm%' THEN 1
                WHEN x.source = 'n2g' THEN 2 ELSE 3 END,
           x.position
  LIMIT 1);
