-- The message store (issue 15): every message a session sends or receives, its chats and the
-- contacts it sees, so an app can ask "which chats, what was said, who is this" after a
-- restart. It replaces `message_log` (migration 0032): the facts replies, reactions and group
-- read receipts need (chat, sender, from_me, type, a preview) are columns of `messages`.
--
-- Everything is keyed by the session row id (`sessions.id`, as every session-owned table since
-- migration 0050): a session deleted and created again under the same session_id sees nothing
-- of the old one's messages. The rows go with their session (ON DELETE CASCADE).
--
-- What is stored is personal data: MESSAGE_STORE=metadata keeps no text, captions, content or
-- media references; MESSAGE_STORE=off writes nothing here; MESSAGE_STORE_RETENTION prunes.

CREATE TABLE messages (
    session_uid   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    message_id    text NOT NULL,
    chat_jid      text NOT NULL,
    sender_jid    text,           -- the author without a device: phone JID when known, else LID
    sender_phone  text,
    sender_lid    text,
    from_me       boolean NOT NULL,
    type          text NOT NULL,
    text          text,           -- text, or a media message's caption (NULL: metadata mode, revoked)
    content       jsonb,          -- the rest of the body by type (location, contact, poll, reaction...)
    media         jsonb,          -- media reference: media_key, mime_type, size, sha256, filename
    reactions     jsonb,          -- {author JID: emoji}; a removed reaction removes its key
    quoted_id     text,
    push_name     text,
    sent_at       timestamptz NOT NULL,  -- WhatsApp's timestamp (the time we saw it when it has none)
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'sent'
                  CHECK (status IN ('pending', 'sent', 'delivered', 'read', 'played', 'received')),
    status_at     timestamptz,
    edited_at     timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    PRIMARY KEY (session_uid, message_id)
);
-- a chat's messages newest first (the read API's page, keyset on (sent_at, message_id))
CREATE INDEX idx_messages_chat_time ON messages (session_uid, chat_jid, sent_at DESC, message_id DESC);
-- retention: oldest stored first across sessions. By recorded_at, not sent_at: an index on sent_at
-- alone tempts the planner to walk it backwards for a chat's page (and filter), which is fast only
-- while the chat is a large share of the table
CREATE INDEX idx_messages_recorded_at ON messages (recorded_at);

CREATE TABLE chats (
    session_uid      uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    chat_jid         text NOT NULL,
    name             text,          -- group subject, or the contact's name
    is_group         boolean NOT NULL,
    last_message_id  text,
    last_message_at  timestamptz,
    activity_at      timestamptz NOT NULL DEFAULT now(),  -- the newest message, else when WhatsApp named it
    unread_count     integer NOT NULL DEFAULT 0,
    last_read_at     timestamptz,   -- received messages after it are unread
    archived         boolean,       -- NULL: WhatsApp has not told us
    pinned           boolean,
    muted_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_uid, chat_jid)
);
-- the chat list: newest activity first
CREATE INDEX idx_chats_activity ON chats (session_uid, activity_at DESC, chat_jid DESC);
CREATE INDEX idx_chats_activity_at ON chats (activity_at);

CREATE TABLE contacts (
    session_uid     uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    jid             text NOT NULL,
    phone           text,
    lid             text,
    push_name       text,
    business_name   text,
    full_name       text,
    first_name      text,
    on_whatsapp     boolean,
    about           text,
    picture_url     text,
    profile_at      timestamptz,   -- when about/picture were fetched through the runner (the cache)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_uid, jid)
);
CREATE INDEX idx_contacts_phone ON contacts (session_uid, phone);
CREATE INDEX idx_contacts_updated_at ON contacts (updated_at);

-- what message_log knew moves into messages, for the session row that owns it now
INSERT INTO messages (session_uid, message_id, chat_jid, sender_jid, from_me, type, text, sent_at, recorded_at,
                      status)
SELECT s.id, l.message_id, l.chat_jid, l.sender_jid, l.from_me, l.type, l.preview,
       coalesce(l.sent_at, l.recorded_at), l.recorded_at, CASE WHEN l.from_me THEN 'sent' ELSE 'received' END
  FROM message_log l JOIN sessions s ON s.session_id = l.session_id
ON CONFLICT DO NOTHING;
DROP TABLE message_log;
