-- Everything a session owns is keyed by the session row's immutable id (`sessions.id`),
-- not by the text `session_id`, which an admin may reuse after a delete. A new session
-- with an old session_id must see nothing of the old one (deliveries, attempts, commands,
-- idempotency keys, stats, events), and no event of the new one may be routed by the old
-- one's webhook configuration (issue 11, finding 1).
--
-- Rows whose owner cannot be told any more (their session is gone and left no tombstone)
-- are deleted: they could only ever have been read by a later session of the same name.

-- commands: the owner, and idempotency keys per owner
ALTER TABLE commands ADD COLUMN session_uid uuid;
UPDATE commands c SET session_uid = s.id FROM sessions s
 WHERE s.session_id = c.session_id AND c.created_at >= s.created_at;
DELETE FROM commands WHERE session_uid IS NULL;
ALTER TABLE commands ALTER COLUMN session_uid SET NOT NULL;
ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_session_id_idempotency_key_key;
ALTER TABLE commands ADD CONSTRAINT commands_session_uid_idempotency_key_key UNIQUE (session_uid, idempotency_key);
CREATE INDEX idx_commands_session_uid_created ON commands (session_uid, created_at);

-- tombstones: one per deleted session row (a session_id reused and deleted again leaves two)
ALTER TABLE session_tombstones ADD COLUMN session_uid uuid;
UPDATE session_tombstones SET session_uid = gen_random_uuid();
ALTER TABLE session_tombstones ALTER COLUMN session_uid SET NOT NULL;
ALTER TABLE session_tombstones DROP CONSTRAINT session_tombstones_pkey;
ALTER TABLE session_tombstones ADD PRIMARY KEY (session_uid);
CREATE INDEX idx_session_tombstones_session_id ON session_tombstones (session_id);

-- webhook deliveries: the owner (a live session or a tombstone)
ALTER TABLE webhook_deliveries ADD COLUMN session_uid uuid;
UPDATE webhook_deliveries d SET session_uid = s.id FROM sessions s
 WHERE s.session_id = d.session_id AND d.created_at >= s.created_at;
UPDATE webhook_deliveries d SET session_uid = t.session_uid FROM session_tombstones t
 WHERE d.session_uid IS NULL AND t.session_id = d.session_id AND d.created_at <= t.deleted_at;
DELETE FROM webhook_deliveries WHERE session_uid IS NULL;  -- attempts cascade
ALTER TABLE webhook_deliveries ALTER COLUMN session_uid SET NOT NULL;
CREATE INDEX idx_webhook_deliveries_owner ON webhook_deliveries (session_uid, created_at DESC);
CREATE INDEX idx_webhook_deliveries_owner_status ON webhook_deliveries (session_uid, status, created_at DESC);

-- the event outbox: who produced the event (its envelope carries it as metadata.session_uid)
ALTER TABLE event_outbox ADD COLUMN session_uid uuid;
UPDATE event_outbox o SET session_uid = s.id FROM sessions s
 WHERE s.session_id = o.session_id AND o.created_at >= s.created_at;
UPDATE event_outbox o SET envelope = jsonb_set(o.envelope, '{metadata,session_uid}', to_jsonb(o.session_uid::text))
 WHERE o.session_uid IS NOT NULL AND o.envelope ? 'metadata';

-- received media held by a runner: whose message it is
ALTER TABLE inbound_media_pending ADD COLUMN session_uid uuid;
UPDATE inbound_media_pending p SET session_uid = s.id FROM sessions s WHERE s.session_id = p.session_id;

-- the circuit breaker: per (session row, URL). Keyed by URL alone, one tenant could open
-- another tenant's breaker (point its webhook at the other's URL, which refuses its
-- signatures) or re-enable an endpoint the other's receiver disabled with a 410 (a
-- redeliver re-enables). Breaker state is transient: rows without an owner start closed.
DELETE FROM webhook_endpoints;
ALTER TABLE webhook_endpoints ADD COLUMN session_uid uuid NOT NULL;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_pkey;
ALTER TABLE webhook_endpoints ADD PRIMARY KEY (session_uid, url);
DROP INDEX IF EXISTS idx_webhook_deliveries_parked;
CREATE INDEX idx_webhook_deliveries_parked ON webhook_deliveries (session_uid, url, created_at)
    WHERE status = 'retrying' AND next_attempt_at IS NULL;
