//! Packs the sample programs the integration tests run into `$OUT_DIR/programs.cpio` (newc),
//! under `/bin/`, all built here from the unmodified `apps/c-hello/c/hello.c` for the target's
//! architecture: static musl non-PIE (`hello-musl`) and static-PIE (`hello-musl-pie`), static
//! glibc non-PIE (`hello-glibc`) and static-PIE (`hello-glibc-pie`); and files the loader must
//! refuse: the musl program for the other architecture (`hello-wrong-arch`), a dynamically
//! linked one (`hello-dynamic`), a truncated one (`hello-truncated`), one with a corrupt header
//! (`hello-corrupt`) and a shell script (`not-elf`); `wx` (`c/wx.c`, static musl non-PIE),
//! which checks W^X from inside; `procs` (`c/procs.c`, static musl non-PIE), the processes
//! checks (fork, wait, signals); and `mapfile` (`c/mapfile.c`, static musl non-PIE), the
//! checks of file mappings (`mmap` of a file straight from a virtio-fs DAX window). `./x build
//! elf-runner` installs the toolchains (musl for both architectures, glibc's static libraries).
//!
//! Any other program (`./x run --elf PATH`, with `--files DIR`) reaches the runner at boot, in
//! an initial RAM archive beside the image (`xtask::build::elf_runner_with`): the image stays
//! the same whatever it runs.

use libos_vfs::cpio::Builder;
use std::path::{Path, PathBuf};
use std::process::Command;

const HELLO: &str = "../c-hello/c/hello.c";
const WX: &str = "c/wx.c";
const PROCS: &str = "c/procs.c";
const MAPFILE: &str = "c/mapfile.c";

/// The C compilers for one architecture.
struct Toolchain {
    musl: &'static str,
    musl_lib: &'static str,
    gnu: &'static str,
}

fn toolchain(arch: &str) -> Toolchain {
    match arch {
        "x86_64" => Toolchain { musl: "musl-gcc", musl_lib: "/usr/lib/x86_64-linux-musl", gnu: "gcc" },
        "aarch64" => Toolchain { musl: "aarch64-linux-musl-gcc", musl_lib: "/usr/lib/aarch64-linux-musl", gnu: "aarch64-linux-gnu-gcc" },
        other => panic!("elf-runner: no toolchain for {other}"),
    }
}

fn run(command: &mut Command) {
    let status = command.status().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed ({status})");
}

fn query(compiler: &str, arg: &str) -> String {
    let out = Command::new(compiler).arg(arg).output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    String::from_utf8(out.stdout).expect("UTF-8 path").trim().to_string()
}

/// Compiles hello.c into `out/name` with `compiler` and `flags`.
fn compile(out: &Path, name: &str, compiler: &str, flags: &[&str]) -> PathBuf {
    compile_source(out, name, HELLO, compiler, flags)
}

fn compile_source(out: &Path, name: &str, source: &str, compiler: &str, flags: &[&str]) -> PathBuf {
    let path = out.join(name);
    run(Command::new(compiler).args(["-O2", "-g0", "-Wall"]).args(flags).arg(source).arg("-o").arg(&path));
    path
}

/// musl has no `-static-pie` in its gcc wrapper's specs: link rcrt1.o (which relocates the
/// program itself) and the static libc by hand.
fn musl_static_pie(out: &Path, tools: &Toolchain) -> PathBuf {
    let lib = tools.musl_lib;
    let path = out.join("hello-musl-pie");
    run(Command::new(tools.musl)
        .args(["-O2", "-g0", "-Wall", "-fPIE", "-nostartfiles", "-nostdlib", "-Wl,-static,-pie,--no-dynamic-linker,-z,text"])
        .arg(format!("{lib}/rcrt1.o"))
        .arg(format!("{lib}/crti.o"))
        .arg(query(tools.gnu, "-print-file-name=crtbeginS.o"))
        .arg(HELLO)
        .arg(format!("{lib}/libc.a"))
        .arg(query(tools.gnu, "-print-libgcc-file-name"))
        .arg(query(tools.gnu, "-print-file-name=crtendS.o"))
        .arg(format!("{lib}/crtn.o"))
        .arg("-o")
        .arg(&path));
    path
}

fn samples(out: &Path, arch: &str) -> Vec<(String, Vec<u8>)> {
    let tools = toolchain(arch);
    let other = toolchain(if arch == "x86_64" { "aarch64" } else { "x86_64" });
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    let musl = read(compile(out, "hello-musl", tools.musl, &["-static", "-no-pie"]));
    let mut files = vec![
        ("hello-musl".to_string(), musl.clone()),
        ("hello-musl-pie".to_string(), read(musl_static_pie(out, &tools))),
        ("hello-glibc".to_string(), read(compile(out, "hello-glibc", tools.gnu, &["-static", "-no-pie"]))),
        ("hello-glibc-pie".to_string(), read(compile(out, "hello-glibc-pie", tools.gnu, &["-static-pie", "-fPIE"]))),
        ("hello-wrong-arch".to_string(), read(compile(out, "hello-wrong-arch", other.musl, &["-static", "-no-pie"]))),
        ("hello-dynamic".to_string(), read(compile(out, "hello-dynamic", tools.musl, &["-no-pie"]))),
        ("hello-truncated".to_string(), musl[..musl.len() / 2].to_vec()),
        ("not-elf".to_string(), b"#!/bin/sh\necho this is not an ELF file\n".to_vec()),
    ];
    // e_phoff (bytes 32..40) far past the end of the file.
    let mut corrupt = musl;
    corrupt[32..40].copy_from_slice(&0x7fff_0000u64.to_le_bytes());
    files.push(("hello-corrupt".to_string(), corrupt));
    files.push(("wx".to_string(), read(compile_source(out, "wx", WX, tools.musl, &["-static", "-no-pie"]))));
    files.push(("procs".to_string(), read(compile_source(out, "procs", PROCS, tools.musl, &["-static", "-no-pie"]))));
    files.push(("mapfile".to_string(), read(compile_source(out, "mapfile", MAPFILE, tools.musl, &["-static", "-no-pie"]))));
    files
}

fn main() {
    println!("cargo::rerun-if-changed={HELLO}");
    println!("cargo::rerun-if-changed={WX}");
    println!("cargo::rerun-if-changed={PROCS}");
    println!("cargo::rerun-if-changed={MAPFILE}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH");
    let mut builder = Builder::new();
    builder.dir("bin", 0o755);
    for (name, bytes) in &samples(&out, &arch) {
        builder.file(&format!("bin/{name}"), 0o755, bytes);
    }
    std::fs::write(out.join("programs.cpio"), builder.finish()).expect("writing programs.cpio");
}
