-- grove-ds on PostgreSQL, schema version 1. Every value a client sent is
-- ciphertext or public MLS data; records are TLS-encoded as in the sled store.
-- Unsigned 64-bit values are stored in BIGINT (they stay below 2^63).

CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    record      BYTEA NOT NULL              -- UserRecord
);

CREATE TABLE key_packages (
    id          BIGSERIAL PRIMARY KEY,      -- upload order
    user_name   TEXT NOT NULL,
    suite       INTEGER NOT NULL,
    package     BYTEA NOT NULL
);
CREATE INDEX key_packages_owner ON key_packages (user_name, suite, id);

CREATE TABLE last_resort_key_packages (
    user_name   TEXT NOT NULL,
    suite       INTEGER NOT NULL,
    package     BYTEA NOT NULL,
    PRIMARY KEY (user_name, suite)
);

CREATE SEQUENCE group_internal_ids;

CREATE TABLE groups (
    group_id    BYTEA PRIMARY KEY,
    internal_id BIGINT NOT NULL UNIQUE,
    record      BYTEA NOT NULL,             -- GroupRecord (epoch, public state, GroupInfo, removed)
    epoch       BIGINT NOT NULL,            -- the record's epoch: an application message's ticket
    next_seq    BIGINT NOT NULL             -- the log's next free sequence number: a state change's ticket
);

CREATE TABLE log (
    internal_id BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    kind        SMALLINT NOT NULL,
    received_at BIGINT NOT NULL,
    message     BYTEA NOT NULL,
    PRIMARY KEY (internal_id, seq)
);

CREATE TABLE cursors (
    internal_id BIGINT NOT NULL,
    user_name   TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (internal_id, user_name)
);

CREATE TABLE commit_reports (
    internal_id BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    reporter    TEXT NOT NULL,
    report      BYTEA NOT NULL,
    PRIMARY KEY (internal_id, seq, reporter)
);

CREATE SEQUENCE inbox_ids;

CREATE TABLE inbox (
    user_name   TEXT NOT NULL,
    id          BIGINT NOT NULL,
    entry       BYTEA NOT NULL,             -- WelcomeEntry
    PRIMARY KEY (user_name, id)
);

CREATE TABLE challenges (
    challenge   BYTEA PRIMARY KEY,
    user_name   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    hash        BYTEA PRIMARY KEY,          -- SHA-256 of the bearer token; the token is never stored
    user_name   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
