//! `cargo +nightly fuzz run staff_commands`: see guichet_fuzz::staff_commands for what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guichet_fuzz::staff_commands(data));
