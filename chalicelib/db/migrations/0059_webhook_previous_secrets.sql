-- Secret rotation keeps every previous secret it promised (issue 11, finding 7).
-- One previous secret per session was not enough: S1 -> S2 -> S3 within 24 h dropped S1
-- though the first answer promised it for 24 h. Each previous secret now keeps its own
-- expiry, in two arrays of equal length (secret i expires at expires_at[i]), bounded by
-- the API (chalicelib/webhooks/service.py MAX_PREVIOUS_SECRETS). Arrays in the row travel
-- with it: a deleted session's tombstone copies them, as it copied the single pair before.
ALTER TABLE sessions
    ADD COLUMN webhook_secrets_prev_enc         bytea[]       NOT NULL DEFAULT '{}',
    ADD COLUMN webhook_secrets_prev_expires_at  timestamptz[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT sessions_webhook_secrets_prev_pairs
        CHECK (cardinality(webhook_secrets_prev_enc) = cardinality(webhook_secrets_prev_expires_at));

UPDATE sessions
   SET webhook_secrets_prev_enc = ARRAY[webhook_secret_prev_enc],
       webhook_secrets_prev_expires_at = ARRAY[webhook_secret_prev_expires_at]
 WHERE webhook_secret_prev_enc IS NOT NULL AND webhook_secret_prev_expires_at > now();

ALTER TABLE sessions
    DROP COLUMN webhook_secret_prev_enc,
    DROP COLUMN webhook_secret_prev_expires_at;

ALTER TABLE session_tombstones
    ADD COLUMN webhook_secrets_prev_enc         bytea[]       NOT NULL DEFAULT '{}',
    ADD COLUMN webhook_secrets_prev_expires_at  timestamptz[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT session_tombstones_webhook_secrets_prev_pairs
        CHECK (cardinality(webhook_secrets_prev_enc) = cardinality(webhook_secrets_prev_expires_at));

UPDATE session_tombstones
   SET webhook_secrets_prev_enc = ARRAY[webhook_secret_prev_enc],
       webhook_secrets_prev_expires_at = ARRAY[webhook_secret_prev_expires_at]
 WHERE webhook_secret_prev_enc IS NOT NULL AND webhook_secret_prev_expires_at > now();

ALTER TABLE session_tombstones
    DROP COLUMN webhook_secret_prev_enc,
    DROP COLUMN webhook_secret_prev_expires_at;
