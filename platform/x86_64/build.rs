//! Puts the linker script where the final link of any app finds it: the script goes to OUT_DIR,
//! and OUT_DIR joins the library search path of every crate that links this one (`-T` looks
//! there), so apps need no build script of their own.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = "libos-x86_64.ld";
    // With `program-window`, the image moves from 1 MiB to 16 MiB, above the 4-16 MiB window
    // kept for programs linked at 4 MiB (src/pages.rs).
    let text = fs::read_to_string(script).expect("read the linker script");
    let text = if env::var_os("CARGO_FEATURE_PROGRAM_WINDOW").is_some() {
        let moved = text.replace(". = 0x100000;", ". = 0x1000000;");
        assert_ne!(moved, text, "the linker script's load address line changed; update build.rs");
        moved
    } else {
        text
    };
    fs::write(out.join(script), text).expect("write the linker script to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
}
