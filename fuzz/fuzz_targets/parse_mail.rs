//! `cargo +nightly fuzz run parse_mail`: see guichet_fuzz::parse_mail for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::parse_mail(data));
