//! libFuzzer entry for [`libos_fuzz::fuse`] (run it with `./x fuzz fuse`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::fuse::run(data));
