-- End-to-end encryption: the device key directory and per-device envelopes. Public keys and ciphertext only.

CREATE TABLE device_key (
    device_id           TEXT PRIMARY KEY REFERENCES device (id),
    user_id             INTEGER NOT NULL,
    identity_key        TEXT NOT NULL,      -- Curve25519, base64
    signing_key         TEXT NOT NULL,      -- Ed25519, base64
    identity_signature  TEXT NOT NULL,
    spk_id              INTEGER,            -- signed prekey (also the fallback key)
    spk_public          TEXT,
    spk_signature       TEXT,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX device_key_user ON device_key (user_id);

CREATE TABLE one_time_key (
    device_id   TEXT NOT NULL,
    key_id      INTEGER NOT NULL,
    public_key  TEXT NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

CREATE TABLE message_envelope (
    message_id  INTEGER NOT NULL,
    device_id   TEXT NOT NULL,
    user_id     INTEGER NOT NULL,
    ciphertext  TEXT NOT NULL,
    PRIMARY KEY (message_id, device_id)
);
CREATE INDEX message_envelope_device ON message_envelope (device_id);
