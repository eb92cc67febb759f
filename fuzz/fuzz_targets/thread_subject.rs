//! `cargo +nightly fuzz run thread_subject`: see guichet_fuzz::thread_subject for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::thread_subject(data));
