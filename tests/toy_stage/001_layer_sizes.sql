-- The toy stage's one table: how many neurons each layer of the atlas holds.
CREATE TABLE toy_layer_sizes (
    layer INTEGER PRIMARY KEY,
    neurons INTEGER NOT NULL
);
