//! Puts the linker script where the final link of any app finds it: the script goes to OUT_DIR,
//! and OUT_DIR joins the library search path of every crate that links this one (`-T` looks
//! there), so apps need no build script of their own.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = "libos-aarch64.ld";
    fs::copy(script, out.join(script)).expect("copy the linker script to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
}
