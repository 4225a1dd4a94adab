-- A poll's vote is encrypted with the poll's own secret (messageContextInfo.messageSecret)
-- and names the options by their SHA-256 only. The runner keeps the secret and the option
-- names of every poll it sends or receives, so a vote arriving later (even after a restart
-- or on another runner) becomes `poll.vote` with the option names. Pruned after
-- POLL_RETENTION by the retention job; gone with the session.
CREATE TABLE poll_secrets (
    id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    session_uid   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    poll_id       text NOT NULL,
    chat_jid      text NOT NULL,
    creator_jid   text NOT NULL,
    creator_alt   text,
    secret        bytea NOT NULL,
    name          text NOT NULL,
    options       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_uid, poll_id)
);
CREATE INDEX idx_poll_secrets_created_at ON poll_secrets (created_at);
