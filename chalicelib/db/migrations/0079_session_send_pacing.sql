-- Issue 17: send pacing (runner_container/pacing.py). `send_rate`: messages a minute the
-- session sends at most (NULL: unlimited); `typing_simulation`: `composing` in the chat
-- before each text, for a time proportional to its length.
ALTER TABLE sessions
    ADD COLUMN IF NOT EXISTS send_rate integer
        CONSTRAINT sessions_send_rate_range CHECK (send_rate BETWEEN 1 AND 600),
    ADD COLUMN IF NOT EXISTS typing_simulation boolean NOT NULL DEFAULT false;
