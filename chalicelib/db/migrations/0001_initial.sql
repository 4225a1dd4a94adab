-- zemeow's first schema: the seed's sessions table (with the key stored as a digest and
-- secrets encrypted) and the tables the architecture lists. Later migrations extend them.

CREATE TABLE sessions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id          text NOT NULL UNIQUE
                        CHECK (session_id ~ '^[a-z0-9][a-z0-9_-]{2,63}$'),
    name                text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- SHA-256 of the session's API key; the key itself is never stored.
    api_key_hash        text NOT NULL UNIQUE,
    jid                 text,
    status              text NOT NULL DEFAULT 'disconnected'
                        CHECK (status IN ('disconnected', 'connecting', 'connected',
                                          'authenticated', 'error')),
    desired_state       text NOT NULL DEFAULT 'disconnected'
                        CHECK (desired_state IN ('connected', 'disconnected')),
    last_error          text,
    status_reason       text,
    status_changed_at   timestamptz NOT NULL DEFAULT now(),
    proxy_enabled       boolean NOT NULL DEFAULT false,
    proxy_type          text CHECK (proxy_type IN ('http', 'https', 'socks5')),
    proxy_host          text,
    proxy_port          integer CHECK (proxy_port BETWEEN 1 AND 65535),
    proxy_username      text,
    proxy_password_enc  bytea,
    webhook_url         text,
    webhook_events      text[] NOT NULL DEFAULT '{}',
    webhook_secret_enc  bytea,
    auto_reconnect      boolean NOT NULL DEFAULT true,
    metadata            jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    connected_at        timestamptz,
    last_connected_at   timestamptz,
    last_activity       timestamptz
);

-- session_id and api_key_hash are indexed by their UNIQUE constraints.
CREATE INDEX idx_sessions_status ON sessions (status);
CREATE INDEX idx_sessions_created_at ON sessions (created_at);
CREATE INDEX idx_sessions_jid ON sessions (jid);
CREATE INDEX idx_sessions_desired_state ON sessions (desired_state);

-- The command outbox and result store (API -> runner).
CREATE TABLE commands (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id       text NOT NULL,
    type             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    result           jsonb,
    error            jsonb,
    idempotency_key  text,
    attempts         integer NOT NULL DEFAULT 0,
    enqueued_at      timestamptz,          -- last time it was handed to SQS
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    UNIQUE (session_id, idempotency_key)
);
CREATE INDEX idx_commands_session_created ON commands (session_id, created_at);
CREATE INDEX idx_commands_unsent ON commands (created_at) WHERE status = 'queued';

-- One row per delivery of one event to one webhook URL; attempts update it.
CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id          uuid NOT NULL,
    session_id        text NOT NULL,
    event             text NOT NULL,
    url               text NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivering', 'succeeded', 'retrying',
                                        'failed', 'skipped')),
    attempt           integer NOT NULL DEFAULT 0,
    http_status       integer,
    latency_ms        integer,
    response_excerpt  text,
    error             text,
    payload           jsonb NOT NULL,
    next_attempt_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, url)
);
CREATE INDEX idx_webhook_deliveries_session ON webhook_deliveries (session_id, created_at DESC);
CREATE INDEX idx_webhook_deliveries_status ON webhook_deliveries (status, created_at);

-- Circuit-breaker state per endpoint URL.
CREATE TABLE webhook_endpoints (
    url                   text PRIMARY KEY,
    state                 text NOT NULL DEFAULT 'closed'
                          CHECK (state IN ('closed', 'open', 'half_open', 'disabled')),
    consecutive_failures  integer NOT NULL DEFAULT 0,
    opened_at             timestamptz,
    last_failure_at       timestamptz,
    last_success_at       timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Live runner processes; a heartbeat older than the lease TTL means the runner is gone.
CREATE TABLE runners (
    id            text PRIMARY KEY,
    hostname      text NOT NULL,
    pid           integer NOT NULL,
    version       text NOT NULL,
    driver        text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz,
    info          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_runners_heartbeat ON runners (heartbeat_at) WHERE stopped_at IS NULL;

-- Which runner owns which command shard, until when.
CREATE TABLE shard_leases (
    shard         integer PRIMARY KEY CHECK (shard >= 0),
    runner_id     text,
    expires_at    timestamptz NOT NULL DEFAULT now(),
    acquired_at   timestamptz,
    generation    bigint NOT NULL DEFAULT 0
);

-- Who did what, when. Never holds a secret.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,           -- 'admin' or 'session:<session_id>'
    action      text NOT NULL,
    session_id  text,
    request_id  text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_audit_log_session_at ON audit_log (session_id, at DESC);
CREATE INDEX idx_audit_log_at ON audit_log (at DESC);
