//! `cargo +nightly fuzz run outgoing_mail`: see guichet_fuzz::outgoing_mail for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::outgoing_mail(data));
