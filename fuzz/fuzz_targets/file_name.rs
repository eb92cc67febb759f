//! `cargo +nightly fuzz run file_name`: see guichet_fuzz::file_name for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::file_name(data));
