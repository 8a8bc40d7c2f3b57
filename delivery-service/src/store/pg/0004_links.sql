-- Requests to link a new device to its user (docs/identity.md): made by the
-- new device, approved once by another device of the user, gone at expiry.

CREATE TABLE links (
    id          BYTEA PRIMARY KEY,          -- 16 random bytes, named in the link code
    user_name   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    request     BYTEA NOT NULL,             -- TLS-encoded LinkRequest
    approval    BYTEA                       -- sealed to the new device; NULL until approved
);
