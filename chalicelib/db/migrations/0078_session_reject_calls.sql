-- Issue 17: calls. With `reject_calls` the runner rejects every incoming call offer
-- (whatsmeow's RejectCall), sends `reject_call_message` to the caller when one is set, and
-- emits `call.rejected` (runner_container/behaviour.py).
ALTER TABLE sessions
    ADD COLUMN IF NOT EXISTS reject_calls boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS reject_call_message text
        CONSTRAINT sessions_reject_call_message_length CHECK (char_length(reject_call_message) <= 4096);
