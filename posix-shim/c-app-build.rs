//! The build script logic of every C app (`apps/<c-app>/build.rs` includes this file with
//! `#[path = "../../posix-shim/c-app-build.rs"] mod c_app;` and calls [`build`]).
//!
//! It compiles the app's unmodified C sources with musl's gcc wrapper for the target
//! (`musl-gcc` on x86_64, `aarch64-linux-musl-gcc` on aarch64; `./x build` installs them) through
//! the `cc` crate, and links them with musl's `crt1.o` (`_start`) and static `libc.a` into the
//! image. On aarch64 libgcc adds the 128-bit `long double` routines musl's `printf` uses.
//!
//! **Two sets of string routines.** Rust's `compiler_builtins` and musl both define `memcpy`,
//! `memset` and friends, and the kernel (soft-float, so that system calls need not save the
//! FP/SIMD registers) must never run musl's: aarch64 musl's `memset` uses `q0`. So the C
//! objects and a copy of `libc.a` get theirs under other names ([`SHARED_ROUTINES`] with
//! `objcopy --redefine-syms`): C code keeps musl's fast versions, Rust code calls
//! `compiler_builtins`'.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Symbols both `compiler_builtins` and musl define; the C side's are renamed `__libos_c_NAME`.
const SHARED_ROUTINES: [&str; 6] = ["memcpy", "memmove", "memset", "memcmp", "bcmp", "strlen"];

/// Compiles `sources` (paths relative to the app's directory) with `flags` and links the
/// result with musl.
pub fn build(sources: &[&str], flags: &[&str]) {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let (compiler, libdir, objcopy) = match arch.as_str() {
        "x86_64" => ("musl-gcc", "/usr/lib/x86_64-linux-musl", "objcopy"),
        "aarch64" => ("aarch64-linux-musl-gcc", "/usr/lib/aarch64-linux-musl", "aarch64-linux-gnu-objcopy"),
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
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let renames = out.join("c-string-routines.txt");
    let list: String = SHARED_ROUTINES.iter().map(|name| format!("{name} __libos_c_{name}\n")).collect();
    std::fs::write(&renames, list).expect("writing the rename list");
    redefine_symbols(objcopy, &renames, &out.join("libc_app.a"), &out.join("libc_app.a"));
    redefine_symbols(objcopy, &renames, &Path::new(libdir).join("libc.a"), &out.join("libc.a"));
    let crt1 = Path::new(libdir).join("crt1.o");
    assert!(crt1.is_file(), "{} is missing: install musl for {arch} (./x build does)", crt1.display());
    println!("cargo::rustc-link-arg={}", crt1.display());
    println!("cargo::rustc-link-search=native={}", out.display());
    println!("cargo::rustc-link-lib=static=c");
    if arch == "aarch64" {
        let libgcc = output_path(compiler, "-print-libgcc-file-name");
        println!("cargo::rustc-link-arg={}", libgcc.display());
    }
}

/// `objcopy --redefine-syms=renames input output`.
fn redefine_symbols(objcopy: &str, renames: &Path, input: &Path, output: &Path) {
    let status = Command::new(objcopy)
        .arg(format!("--redefine-syms={}", renames.display()))
        .arg(input)
        .arg(output)
        .status()
        .unwrap_or_else(|e| panic!("running {objcopy} (binutils for the target; ./x build installs it): {e}"));
    assert!(status.success(), "{objcopy} failed on {}", input.display());
}

fn output_path(compiler: &str, query: &str) -> PathBuf {
    let out = Command::new(compiler).arg(query).output().expect("running the musl compiler");
    PathBuf::from(String::from_utf8(out.stdout).expect("UTF-8 path").trim())
}
