-- Users' signed device lists (every version, never changed), and the device
-- a bearer token was issued to (NULL: a user without a device list).

CREATE TABLE device_lists (
    user_name   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    list        BYTEA NOT NULL,             -- TLS-encoded DeviceList, verified before it is stored
    PRIMARY KEY (user_name, version)
);

ALTER TABLE tokens ADD COLUMN device TEXT;
