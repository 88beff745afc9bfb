//! libFuzzer entry for [`libos_fuzz::acpi`] (run it with `./x fuzz acpi`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| libos_fuzz::acpi::run(data));
