//! libFuzzer entry for [`libos_fuzz::elf`] (run it with `./x fuzz elf`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::elf::run(data));
