//! The daemon's background workers that sit above the helpdesk's operations: each runs until
//! the shutdown signal, finishing its unit of work first. The IMAP readers are `ingest`; the
//! timers run from `run.rs`.
//!
//! - `sender`: drains the outbox — composes each notification with the templates
//!   (`notify::render`, `notify::pending`) just before sending it by SMTP or writing it as a file.

pub mod sender;
