-- The events read API (GET /sessions/{session_id}/events) pages one session row's events
-- by their per-session sequence number (metadata.sequence). Scoped by `session_uid`, the
-- row's immutable id, never by the reusable text session_id: a new session with an old
-- session_id sees none of the old one's events.
CREATE INDEX idx_event_outbox_session_seq
    ON event_outbox (session_uid, ((envelope #>> '{metadata,sequence}')::bigint))
    WHERE session_uid IS NOT NULL;

-- The runner prunes sent events older than EVENT_RETENTION (default 7d) by sent_at.
CREATE INDEX idx_event_outbox_sent ON event_outbox (sent_at) WHERE sent_at IS NOT NULL;
