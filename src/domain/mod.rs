//! Domain types: parsed once at the boundary, valid everywhere after. No IO here.

mod address;
mod event;
mod ticket;

pub use address::{EmailAddress, StaffList};
pub use event::Event;
pub use ticket::{
    ForwardPrefixes, MessageKind, Priority, Status, SubjectToken, is_forward_subject, strip_reply_prefixes,
};
