-- Retention (issue 14): the pruning job (chalicelib/repositories/retention.py) finds rows past
-- their retention through these partial indexes, oldest first, a bounded batch at a time,
-- instead of scanning each table. Only finished rows are indexed: unsent events, queued or
-- running commands and deliveries still in flight are never candidates.
--
-- A deployment whose tables are already large can build them first without blocking writes
-- (CREATE INDEX CONCURRENTLY ... with the same names and definitions, outside a transaction);
-- this migration then finds them and does nothing.
CREATE INDEX IF NOT EXISTS idx_commands_finished_at ON commands (finished_at)
    WHERE status IN ('succeeded', 'failed');
CREATE INDEX IF NOT EXISTS idx_webhook_deliveries_finished ON webhook_deliveries (status, updated_at)
    WHERE status IN ('succeeded', 'failed', 'skipped');
CREATE INDEX IF NOT EXISTS idx_rate_limits_updated_at ON rate_limits (updated_at);
-- event_outbox has idx_event_outbox_sent (migration 0063); audit_log has idx_audit_log_at (at DESC)
