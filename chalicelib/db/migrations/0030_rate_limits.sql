-- Token buckets shared by every API instance (Lambda is stateless): one row per bucket,
-- e.g. 'contacts_check:<session_id>'. Refilled lazily from `updated_at` and charged in one
-- UPDATE (see chalicelib/repositories/rate_limits.py), so concurrent requests serialise on
-- the row lock and never spend the same tokens twice.
CREATE TABLE IF NOT EXISTS rate_limits (
    bucket      text PRIMARY KEY,
    tokens      double precision NOT NULL,
    granted     boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
