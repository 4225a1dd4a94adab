-- A runner's lifeline (issue 16): each runner holds a session-level advisory lock
-- (pg_advisory_lock(<namespace>, lifeline_key)) on a connection of its own. The lock ends
-- with that connection, so with the process: a runner killed with SIGKILL is seen dead at
-- once (its lock is gone from pg_locks) and its shards and running commands move without
-- waiting for RUNNER_LEASE_TTL. A runner that froze keeps its connection and its lock: for
-- it the heartbeat and the TTL still decide. NULL: a runner that holds no lifeline (an
-- older version, or RUNNER_LIFELINE=off); the TTL alone decides for it.
ALTER TABLE runners ADD COLUMN IF NOT EXISTS lifeline_key integer;
CREATE SEQUENCE IF NOT EXISTS runner_lifeline_seq AS integer MINVALUE 1 CYCLE;
