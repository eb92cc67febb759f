//! `cargo +nightly fuzz run quotes`: see guichet_fuzz::quotes for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::quotes(data));
