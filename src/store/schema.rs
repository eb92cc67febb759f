// Diesel table definitions, shared by both backends (only types common to SQLite and PostgreSQL).

diesel::table! { meta (key) { key -> Text, value -> Text, } }
diesel::table! { counters (name) { name -> Text, value -> BigInt, } }

diesel::table! {
    raw_mails (id) {
        id -> BigInt,
        message_key -> Text,
        source -> Text,
        received_at -> BigInt,
        size -> BigInt,
        data -> Binary,
        state -> Text,
        reason -> Nullable<Text>,
        ticket_number -> Nullable<BigInt>,
    }
}

diesel::table! {
    tickets (number) {
        number -> BigInt,
        subject -> Text,
        status -> Text,
        priority -> Text,
        requester -> Text,
        company -> Nullable<Text>,
        product -> Nullable<Text>,
        service -> Nullable<Text>,
        unverified -> Bool,
        refers_to -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        closed_at -> Nullable<BigInt>,
        assignee -> Nullable<Text>,
        queue -> Nullable<Text>,
        waiting_since -> Nullable<BigInt>,
    }
}

diesel::table! { watchers (ticket_number, address) { ticket_number -> BigInt, address -> Text, } }

diesel::table! {
    messages (id) {
        id -> BigInt,
        ticket_number -> BigInt,
        kind -> Text,
        from_addr -> Text,
        from_name -> Nullable<Text>,
        at -> BigInt,
        subject -> Text,
        text -> Text,
        full_text -> Text,
        html -> Nullable<Text>,
        mail_message_id -> Nullable<Text>,
        raw_mail_id -> Nullable<BigInt>,
        auto -> Bool,
        refused -> Text,
        unverified -> Bool,
        event -> Nullable<Text>,
    }
}

diesel::table! { thread_ids (message_id) { message_id -> Text, ticket_number -> BigInt, } }
diesel::table! {
    blobs (sha256) {
        sha256 -> Text,
        size -> BigInt,
        data -> Binary,
        raw_mail_id -> Nullable<BigInt>,
        raw_start -> Nullable<BigInt>,
        raw_end -> Nullable<BigInt>,
    }
}

diesel::table! {
    attachments (id) {
        id -> BigInt,
        message_id -> BigInt,
        blob_sha256 -> Text,
        name -> Text,
        content_type -> Text,
        size -> BigInt,
        content_id -> Nullable<Text>,
        inline -> Bool,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        ticket_number -> Nullable<BigInt>,
        event -> Text,
        recipient -> Text,
        envelope_from -> Text,
        message_id -> Text,
        automatic -> Bool,
        data -> Binary,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        locked_until -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        spec -> Nullable<Text>,
    }
}

diesel::table! { undeliverable (address) { address -> Text, until_at -> BigInt, reason -> Text, } }

diesel::table! {
    mailbox_state (name) {
        name -> Text,
        uidvalidity -> Nullable<BigInt>,
        last_uid -> BigInt,
        server_count -> BigInt,
        ingested -> BigInt,
        quarantined -> BigInt,
        last_poll -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        lease_holder -> Nullable<Text>,
        lease_until -> BigInt,
        last_success -> Nullable<BigInt>,
        failing_since -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_tokens (hash) {
        hash -> Text,
        email -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        next_path -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (hash) { hash -> Text, email -> Text, csrf -> Text, created_at -> BigInt, expires_at -> BigInt, }
}
diesel::table! { reads (email, ticket_number) { email -> Text, ticket_number -> BigInt, read_at -> BigInt, } }
diesel::table! { saved_criteria (email) { email -> Text, query -> Text, } }
diesel::table! { rate_events (key, at) { key -> Text, at -> BigInt, } }
diesel::table! {
    timers (ticket_number, kind) { ticket_number -> BigInt, kind -> Text, due_at -> BigInt, fired_at -> Nullable<BigInt>, }
}
diesel::table! { oauth_tokens (username) { username -> Text, refresh_token -> Text, updated_at -> BigInt, } }

diesel::allow_tables_to_appear_in_same_query!(tickets, watchers, messages, attachments, blobs, outbox, reads, timers);
