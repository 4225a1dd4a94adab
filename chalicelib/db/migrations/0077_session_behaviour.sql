-- Issue 17: per-session behaviour the runner applies without reconnecting
-- (runner_container/behaviour.py). `always_online` keeps the account's presence
-- `available`; `ignore_groups` / `ignore_status_broadcast` drop those chats' events before
-- they are stored or emitted; `auto_read` sends read receipts for received messages.
ALTER TABLE sessions
    ADD COLUMN IF NOT EXISTS always_online boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS ignore_groups boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS ignore_status_broadcast boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS auto_read boolean NOT NULL DEFAULT false;
