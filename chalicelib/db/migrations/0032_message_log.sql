-- What the runner needs to remember about recent messages to build correct replies and
-- reactions: WhatsApp identifies a quoted or reacted-to message by (chat, id, sender,
-- from_me), and a reply carries a preview of the quoted message. The API only gets a
-- `quoted_message_id`, so the runner looks the rest up here. Only a short preview of the
-- text is kept (quote previews are short), and rows are pruned after MESSAGE_LOG_RETENTION.
CREATE TABLE message_log (
    session_id   text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    message_id   text NOT NULL,
    chat_jid     text NOT NULL,
    sender_jid   text,
    from_me      boolean NOT NULL,
    type         text NOT NULL,
    preview      text,
    sent_at      timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, message_id)
);
CREATE INDEX idx_message_log_recorded_at ON message_log (recorded_at);
