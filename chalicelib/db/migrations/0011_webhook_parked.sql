-- Deliveries parked while their endpoint's circuit breaker is open (status 'retrying' with no
-- next attempt time): released together when a probe succeeds, found by URL.
CREATE INDEX idx_webhook_deliveries_parked ON webhook_deliveries (url, created_at)
    WHERE status = 'retrying' AND next_attempt_at IS NULL;
