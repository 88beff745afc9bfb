//! The build script logic of every C app (`apps/<c-app>/build.rs` includes this file with
//! `#[path = "../../posix-shim/c-app-build.rs"] mod c_app;` and calls [`build`]).
//!
//! It compiles the app's unmodified C sources with musl's gcc wrapper for the target
//! (`musl-gcc` on x86_64, `aarch64-linux-musl-gcc` on aarch64; `./x build` installs them) through
//! the `cc` crate, and links them with musl's `crt1.o` (`_start`) and static `libc.a` into the
//! image. Rust's `compiler_builtins` already provides `memcpy` and friends; the linker takes
//! musl's objects only for symbols still undefined, so the two do not clash. On aarch64 libgcc
//! adds the 128-bit `long double` routines musl's `printf` uses.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `sources` (paths relative to the app's directory) with `flags` and links the
/// result with musl.
pub fn build(sources: &[&str], flags: &[&str]) {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let (compiler, libdir) = match arch.as_str() {
        "x86_64" => ("musl-gcc", "/usr/lib/x86_64-linux-musl"),
        "aarch64" => ("aarch64-linux-musl-gcc", "/usr/lib/aarch64-linux-musl"),
        other => panic!("posix-shim C apps: no musl toolchain for {other}"),
    };
    let mut build = cc::Build::new();
    build.compiler(compiler).no_default_flags(true).cargo_warnings(true);
    build.flag("-O2").flag("-g0").flag("-ffunction-sections").flag("-fdata-sections").flag("-Wall");
    // The aarch64 image is position independent (it relocates itself); x86_64 is linked at 1 MiB.
    build.flag(if arch == "aarch64" { "-fPIE" } else { "-fno-pie" });
    for flag in flags {
        build.flag(flag);
    }
    for source in sources {
        build.file(source);
        println!("cargo::rerun-if-changed={source}");
    }
    build.compile("c_app");
    let crt1 = Path::new(libdir).join("crt1.o");
    assert!(crt1.is_file(), "{} is missing: install musl for {arch} (./x build does)", crt1.display());
    println!("cargo::rustc-link-arg={}", crt1.display());
    println!("cargo::rustc-link-search=native={libdir}");
    println!("cargo::rustc-link-lib=static=c");
    if arch == "aarch64" {
        let libgcc = output_path(compiler, "-print-libgcc-file-name");
        println!("cargo::rustc-link-arg={}", libgcc.display());
    }
}

fn output_path(compiler: &str, query: &str) -> PathBuf {
    let out = Command::new(compiler).arg(query).output().expect("running the musl compiler");
    PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8 path").trim())
}
