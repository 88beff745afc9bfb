//! libFuzzer entry for [`libos_fuzz::cpio`] (run it with `./x fuzz cpio`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::cpio::run(data));
