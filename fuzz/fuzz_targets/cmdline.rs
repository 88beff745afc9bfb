//! libFuzzer entry for [`libos_fuzz::cmdline`] (run it with `./x fuzz cmdline`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::cmdline::run(data));
