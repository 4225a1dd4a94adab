-- Webhook delivery (issue 5): attempt history, retry rounds, breaker probes, secret rotation.

-- A delivery is one event to one URL; `attempt` counts every HTTP attempt ever made,
-- `round_attempt` those of the current round (a manual redeliver starts a new round).
ALTER TABLE webhook_deliveries
    ADD COLUMN round_attempt    integer NOT NULL DEFAULT 0,
    ADD COLUMN target           text NOT NULL DEFAULT 'session'
                                CHECK (target IN ('session', 'custom')),
    ADD COLUMN last_attempt_at  timestamptz,
    ADD COLUMN succeeded_at     timestamptz,
    ADD COLUMN enqueued_at      timestamptz;   -- the event's timestamp: enqueue -> delivered latency

CREATE INDEX idx_webhook_deliveries_session_status
    ON webhook_deliveries (session_id, status, created_at DESC);
CREATE INDEX idx_webhook_deliveries_session_event
    ON webhook_deliveries (session_id, event, created_at DESC);

-- Every HTTP attempt (or refusal before one: SSRF guard, disabled endpoint).
CREATE TABLE webhook_attempts (
    id                bigserial PRIMARY KEY,
    delivery_id       uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    at                timestamptz NOT NULL DEFAULT now(),
    outcome           text NOT NULL
                      CHECK (outcome IN ('succeeded', 'retry', 'failed', 'disabled', 'refused')),
    http_status       integer,
    latency_ms        integer,
    response_excerpt  text,
    error             text
);
CREATE INDEX idx_webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
CREATE INDEX idx_webhook_attempts_at ON webhook_attempts (at);

-- Circuit breaker: when the half-open probe started (one probe at a time), why disabled.
ALTER TABLE webhook_endpoints
    ADD COLUMN probe_started_at  timestamptz,
    ADD COLUMN disabled_at       timestamptz,
    ADD COLUMN disabled_reason   text;

-- Secret rotation: the previous secret keeps signing (beside the new one) until it expires.
ALTER TABLE sessions
    ADD COLUMN webhook_secret_prev_enc         bytea,
    ADD COLUMN webhook_secret_prev_expires_at  timestamptz;
