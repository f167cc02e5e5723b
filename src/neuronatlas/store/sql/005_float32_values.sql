-- Activation values as little-endian float32 BLOBs (4 bytes a value) instead of JSON text
-- (~20 bytes a value at full precision: 65% of an OpenAI import's database). Model
-- activations are float32, and OpenAI's files hold float32 values widened to float64, so the
-- BLOB is exact for them; a record with any value float32 cannot hold exactly keeps its JSON
-- text instead. The seed's `activations` relation stays plain SQL: the view below decodes
-- the BLOB with built-in functions only (substr, instr, json_each, printf).

-- 2^(e - 150): the weight of a float32 mantissa's last bit for exponent field e (e = 0 is
-- subnormal, same weight as e = 1). Powers of two are exact in SQLite's doubles.
CREATE TABLE float32_scales (
  e     INTEGER PRIMARY KEY,
  scale REAL NOT NULL
);
WITH RECURSIVE
  down(e, scale) AS (SELECT 150, 1.0 UNION ALL SELECT e - 1, scale * 0.5 FROM down WHERE e > 1),
  up(e, scale)   AS (SELECT 150, 1.0 UNION ALL SELECT e + 1, scale * 2.0 FROM up WHERE e < 254)
INSERT INTO float32_scales
SELECT e, scale FROM down UNION SELECT e, scale FROM up
UNION SELECT 0, scale FROM down WHERE e = 1;

DROP VIEW activations;

-- Excerpts keyed by a rowid in write order, found by their digest through a small unique
-- index. Keyed by the (random) digest itself, every batch of new excerpts landed on pages all
-- over the table, and each commit rewrote most of it: 3x slower at 3,072 neurons and worse
-- as the table outgrows the page cache; the digest index is ~20 bytes an excerpt.
CREATE TABLE excerpts_v5 (
  digest INTEGER NOT NULL UNIQUE,      -- first 8 bytes of blake2b(tokens JSON), signed
  tokens TEXT NOT NULL                 -- compact JSON array of token strings
);
INSERT INTO excerpts_v5(digest, tokens) SELECT id, tokens FROM excerpts ORDER BY id;
DROP TABLE excerpts;
ALTER TABLE excerpts_v5 RENAME TO excerpts;

CREATE TABLE records_v5 (
  neuron_id       TEXT NOT NULL,
  category        TEXT NOT NULL,       -- 'top' | 'random' | 'quantile_0' ...
  rank            INTEGER NOT NULL,    -- order within the category (top: strongest first)
  excerpt_digest  INTEGER NOT NULL,    -- excerpts.digest
  activation_f32  BLOB,                -- one little-endian float32 per token; NaN = null
  activation_json TEXT,                -- compact JSON, when some value is not a float32
  max_activation  REAL,                -- NULL when every value is NULL (NaN in the source)
  peak_index      INTEGER,
  PRIMARY KEY (neuron_id, category, rank),
  CHECK ((activation_f32 IS NULL) <> (activation_json IS NULL))
) WITHOUT ROWID;  -- rows are now ~300 bytes (64 tokens): they sit inline in the key b-tree,
                  -- which saves the rowid table's separate primary-key index
INSERT INTO records_v5
SELECT neuron_id, category, rank, excerpt_id, NULL, activation_values, max_activation, peak_index
FROM records;
DROP TABLE records;
ALTER TABLE records_v5 RENAME TO records;

-- The seed notebook's `activations` relation, records in rank order within a category.
-- A BLOB value is spelled with 17 significant digits, which reads back as the identical
-- double (the text may be longer than Python's shortest spelling of the same number).
CREATE VIEW activations AS
WITH byte_key(bytes) AS (
  -- byte value v sits at position v + 1: instr(bytes, one byte) - 1 reads a byte as an integer
  SELECT X'000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF')
SELECT r.neuron_id AS neuron_id,
       r.category  AS category,
       x.tokens    AS tokens,
       CASE WHEN r.activation_f32 IS NULL THEN r.activation_json ELSE (
         SELECT '[' || group_concat(
                  CASE WHEN e = 255 THEN 'null'   -- NaN/inf: OpenAI writes them as null
                  ELSE printf('%!.17g',
                    (CASE WHEN b3 >= 128 THEN -1.0 ELSE 1.0 END)
                    * (((b2 & 127) << 16) + (b1 << 8) + b0 + CASE WHEN e > 0 THEN 8388608 ELSE 0 END)
                    * (SELECT s.scale FROM float32_scales s WHERE s.e = f.e))
                  END, ',') || ']'
         FROM (SELECT b0, b1, b2, b3, ((b3 & 127) << 1) + (b2 >> 7) AS e
               FROM (SELECT instr(k.bytes, substr(r.activation_f32, 4 * j.key + 1, 1)) - 1 AS b0,
                            instr(k.bytes, substr(r.activation_f32, 4 * j.key + 2, 1)) - 1 AS b1,
                            instr(k.bytes, substr(r.activation_f32, 4 * j.key + 3, 1)) - 1 AS b2,
                            instr(k.bytes, substr(r.activation_f32, 4 * j.key + 4, 1)) - 1 AS b3
                     FROM json_each(x.tokens) j, byte_key k)) f)
       END AS activation_values
FROM records r JOIN excerpts x ON x.digest = r.excerpt_digest
ORDER BY r.neuron_id, r.category, r.rank;
