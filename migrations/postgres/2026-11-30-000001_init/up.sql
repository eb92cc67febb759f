-- Guichet's schema (PostgreSQL), the same tables as migrations/sqlite. Times are unix seconds (BIGINT) so that one query code path serves
-- SQLite and PostgreSQL. Ids come from `counters`, not from autoincrement, for the same reason.

CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value BIGINT NOT NULL);

-- Every inbound mail, byte for byte, keyed on its Message-ID (or a digest): exactly once, never lost.
CREATE TABLE raw_mails (
    id BIGINT PRIMARY KEY NOT NULL,
    message_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    state TEXT NOT NULL,            -- processed | quarantined | dropped
    reason TEXT,
    ticket_number BIGINT
);
CREATE INDEX raw_mails_state ON raw_mails (state);

CREATE TABLE tickets (
    number BIGINT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    requester TEXT NOT NULL,
    company TEXT,
    product TEXT,
    service TEXT,
    unverified BOOLEAN NOT NULL DEFAULT FALSE,
    refers_to BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT
);
CREATE INDEX tickets_requester ON tickets (requester);
CREATE INDEX tickets_company ON tickets (company);
CREATE INDEX tickets_updated ON tickets (updated_at);

CREATE TABLE watchers (
    ticket_number BIGINT NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (ticket_number, address)
);
CREATE INDEX watchers_address ON watchers (address);

CREATE TABLE messages (
    id BIGINT PRIMARY KEY NOT NULL,
    ticket_number BIGINT NOT NULL,
    kind TEXT NOT NULL,             -- customer | staff | note | event
    from_addr TEXT NOT NULL,
    from_name TEXT,
    at BIGINT NOT NULL,
    subject TEXT NOT NULL,
    text TEXT NOT NULL,             -- the new text
    full_text TEXT NOT NULL,        -- the whole text, quoted history included
    html TEXT,
    mail_message_id TEXT,
    raw_mail_id BIGINT,
    auto BOOLEAN NOT NULL DEFAULT FALSE,
    refused TEXT NOT NULL DEFAULT '[]'   -- JSON list of refused attachments
);
CREATE INDEX messages_ticket ON messages (ticket_number, id);

-- Every Message-ID known to belong to a ticket: customers' mails and our own notifications.
CREATE TABLE thread_ids (
    message_id TEXT PRIMARY KEY NOT NULL,
    ticket_number BIGINT NOT NULL
);

-- Attachments, content-addressed: one copy of each file whatever the number of mails carrying it.
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE TABLE attachments (
    id BIGINT PRIMARY KEY NOT NULL,
    message_id BIGINT NOT NULL,
    blob_sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_id TEXT,
    inline BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX attachments_message ON attachments (message_id);

-- The outbox: written in the same transaction as the change that caused it, drained by a worker.
CREATE TABLE outbox (
    id BIGINT PRIMARY KEY NOT NULL,
    ticket_number BIGINT,
    event TEXT NOT NULL,
    recipient TEXT NOT NULL,
    envelope_from TEXT NOT NULL,     -- '' = the null sender <>
    message_id TEXT NOT NULL UNIQUE,
    automatic BOOLEAN NOT NULL,
    data BYTEA NOT NULL,
    state TEXT NOT NULL,             -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);

CREATE TABLE undeliverable (
    address TEXT PRIMARY KEY NOT NULL,
    until_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE mailbox_state (
    name TEXT PRIMARY KEY NOT NULL,
    uidvalidity BIGINT,
    last_uid BIGINT NOT NULL DEFAULT 0,
    server_count BIGINT NOT NULL DEFAULT 0,
    ingested BIGINT NOT NULL DEFAULT 0,
    quarantined BIGINT NOT NULL DEFAULT 0,
    last_poll BIGINT,
    last_error TEXT,
    lease_holder TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE login_tokens (
    hash TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    next_path TEXT
);
CREATE TABLE sessions (
    hash TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE reads (
    email TEXT NOT NULL,
    ticket_number BIGINT NOT NULL,
    read_at BIGINT NOT NULL,
    PRIMARY KEY (email, ticket_number)
);
CREATE TABLE saved_criteria (email TEXT PRIMARY KEY NOT NULL, query TEXT NOT NULL);
CREATE TABLE rate_events (key TEXT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX rate_events_key ON rate_events (key, at);

-- Keyword search over every message and ticket subject: accent-insensitive tsvector, GIN index.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE OR REPLACE FUNCTION unaccent_simple(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, lower($1)) $$;
CREATE TABLE message_search (
    message_id BIGINT PRIMARY KEY NOT NULL,
    tsv TSVECTOR NOT NULL
);
CREATE INDEX message_search_tsv ON message_search USING GIN (tsv);

