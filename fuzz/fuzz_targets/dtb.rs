//! libFuzzer entry for [`libos_fuzz::dtb`] (run it with `./x fuzz dtb`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::dtb::run(data));
