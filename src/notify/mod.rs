//! Outgoing mail: events → templates → RFC 5322 bytes → outbox → SMTP.

pub mod compose;
pub mod message_id;
pub mod pending;
pub mod render;
