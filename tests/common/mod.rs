//! Shared helpers for the integration tests (`mod common;` in a file under `tests/`).
//! Each submodule is self-contained; add new ones here.

pub mod guichet;
pub mod identity;
pub mod mail_stack;
pub mod webdriver;
