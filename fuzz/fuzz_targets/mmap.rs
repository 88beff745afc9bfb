//! libFuzzer entry for [`libos_fuzz::mmap`] (run it with `./x fuzz mmap`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::mmap::run(data));
