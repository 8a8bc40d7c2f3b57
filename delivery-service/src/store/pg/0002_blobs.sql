-- Schema version 2: encrypted blobs in the database, so that every replica
-- serves every blob. A blob is its chunks plus a `blobs` row written last.

CREATE TABLE blobs (
    internal_id BIGINT NOT NULL,
    blob_id     TEXT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (internal_id, blob_id)
);

CREATE TABLE blob_chunks (
    internal_id BIGINT NOT NULL,
    blob_id     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (internal_id, blob_id, n)
);
