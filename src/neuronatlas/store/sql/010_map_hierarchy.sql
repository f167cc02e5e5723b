-- The map's cluster hierarchy (issue 12). Every point's `map_points.cluster` is now a fine
-- cluster (described in `map_clusters`, as before; no more -1 noise), and each fine cluster
-- sits inside one coarse cluster. The map page shows coarse labels zoomed out, fine ones in.

-- The coarse level: label, c-TF-IDF words, size, label position, coherence.
CREATE TABLE map_coarse_clusters (
  cluster   INTEGER PRIMARY KEY,
  label     TEXT NOT NULL,
  words     TEXT NOT NULL,              -- JSON [[word, weight], ...], most characteristic first
  size      INTEGER NOT NULL,
  x         REAL NOT NULL,
  y         REAL NOT NULL,
  coherence REAL                        -- mean cosine between members' explanation vectors
);

-- Fine cluster -> the coarse cluster holding it, and the fine cluster's coherence.
CREATE TABLE map_cluster_parents (
  cluster   INTEGER PRIMARY KEY,        -- map_clusters.cluster
  parent    INTEGER NOT NULL,           -- map_coarse_clusters.cluster
  coherence REAL                        -- NULL for a one-neuron cluster
);
CREATE INDEX map_cluster_parents_parent ON map_cluster_parents(parent);

-- How coherent each level is under each similarity (embed/coherence.py): the mean similarity
-- of a neuron to another member of its cluster, its 95% bootstrap interval, and the mean
-- similarity of two random neurons.
CREATE TABLE map_coherence (
  level       TEXT NOT NULL,            -- 'fine' or 'coarse'
  measure     TEXT NOT NULL,            -- 'embedding' (cosine of vectors) or 'words' (TF-IDF)
  clusters    INTEGER NOT NULL,
  within      REAL,
  within_low  REAL,
  within_high REAL,
  random      REAL,
  PRIMARY KEY (level, measure)
) WITHOUT ROWID;
