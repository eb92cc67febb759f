//! `cargo +nightly fuzz run sanitize_html`: see guichet_fuzz::sanitize_html for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::sanitize_html(data));
