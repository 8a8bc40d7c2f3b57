-- The key-transparency directory (docs/identity.md): akd's records (tree
-- nodes, value states, the aZKS root), the directory's keys and its signed
-- epoch heads, as opaque bytes under keys grove_ds::kt lays out.

CREATE TABLE kt (
    key    BYTEA PRIMARY KEY,
    value  BYTEA NOT NULL
);
