//! Mail sources: IMAP mailboxes (poll + IDLE) and the MTA pipe. A mail is marked processed on the
//! server only after everything it produced is committed.

pub mod imap;
