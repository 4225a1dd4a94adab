-- When a runner took its lifeline (issue 16, bench/faults.py scenario 3). A restart of
-- PostgreSQL ends every connection, so every advisory lock at once: until each runner has
-- taken its lifeline again (at its next heartbeat), a missing lock says nothing about the
-- runner, and trusting it made every runner look dead to the others right after the
-- restart (their shards moved back and forth, their sessions were stopped and reconnected).
-- A cut lifeline counts only for a lock taken after the server started
-- (pg_postmaster_start_time()); before that, the heartbeat and RUNNER_LEASE_TTL decide.
-- NULL (a lifeline taken by an older runner): the heartbeat and the TTL decide.
ALTER TABLE runners ADD COLUMN IF NOT EXISTS lifeline_taken_at timestamptz;
-- The last heartbeat a runner wrote before the server's latest (re)start, recorded at its
-- first heartbeat after it. The newest of them, among the runners that have beaten since
-- the start, is about when the server went down: the downtime is not counted against a heartbeat
-- (`chalicelib.repositories.runners.heartbeat_sql`), so an outage longer than
-- RUNNER_LEASE_TTL does not make every runner dead at once.
ALTER TABLE runners ADD COLUMN IF NOT EXISTS heartbeat_before_start timestamptz;
