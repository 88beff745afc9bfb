//! Building apps into bootable images with Debian's toolchain and `-Zbuild-std`.

use crate::arch::Arch;
use crate::{Result, root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The apps: every directory under `apps/` with a `Cargo.toml` (the package name is the
/// directory name).
pub fn apps() -> Vec<String> {
    let mut apps: Vec<String> = std::fs::read_dir(root().join("apps"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    apps.sort();
    apps
}

/// The apps with a library target (`apps/APP/src/lib.rs`): apps keep their pure logic there
/// (protocol parsing, checksums) so it is unit-tested on the host, which `./x test --host` does
/// with `cargo test -p APP --lib`.
pub fn apps_with_host_tests() -> Vec<String> {
    apps().into_iter().filter(|app| root().join("apps").join(app).join("src/lib.rs").is_file()).collect()
}

/// The app that runs a static Linux ELF file (`./x run --elf PATH`).
pub const ELF_RUNNER: &str = "elf-runner";

/// Whether `app` is a posix-shim C app (its build script compiles C with musl).
pub fn is_c_app(app: &str) -> bool {
    std::fs::read_to_string(root().join("apps").join(app).join("Cargo.toml")).is_ok_and(|t| t.contains("posix-shim"))
}

/// Whether `app` asks to be optimized for speed rather than size: `optimize = "speed"` under
/// `[package.metadata.libos]` in its `Cargo.toml`. The workspace's release profile optimizes
/// for size (`opt-level = "s"`: the default `hello` image stays under its size target); an app
/// that runs C programs or benchmarks trades image bytes for instructions with
/// `opt-level = 3` (measured on `c-bench`: an open/fstat/read/close cycle 12% fewer
/// instructions, the image 535 KB -> 805 KB). Cargo reads profiles only from the workspace's
/// manifest, and with LTO only the whole build's level counts, so `./x` sets it per build.
pub fn optimizes_for_speed(app: &str) -> bool {
    let manifest = std::fs::read_to_string(root().join("apps").join(app).join("Cargo.toml")).unwrap_or_default();
    let mut in_section = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[package.metadata.libos]";
        } else if in_section && line.replace(' ', "") == "optimize=\"speed\"" {
            return true;
        }
    }
    false
}

/// Where the guest images of `arch` are built: separate from the host tools' target directory,
/// so a guest build can run while `cargo test` holds the host one, and one per architecture, so
/// the two architectures build at the same time (cargo locks a whole target directory, build
/// scripts' directory included).
pub fn guest_target_dir(arch: Arch) -> PathBuf {
    root().join("target/guest").join(arch.to_string())
}

/// The ELF that cargo links for `app` on `arch`.
pub fn elf_path(app: &str, arch: Arch) -> PathBuf {
    guest_target_dir(arch).join(arch.target()).join("release").join(app)
}

/// The bootable image of `app` for `arch` (whether or not it is built): the ELF on x86_64 (PVH
/// loaders read ELF), a raw Linux arm64 `Image` beside it on aarch64.
pub fn image_path(app: &str, arch: Arch) -> PathBuf {
    match arch {
        Arch::X86_64 => elf_path(app, arch),
        Arch::Aarch64 => guest_target_dir(arch).join(arch.target()).join("release").join(format!("{app}.Image")),
    }
}

/// Offset of the magic number in a Linux arm64 `Image` header.
const ARM64_MAGIC_OFFSET: usize = 56;

/// The `image_size` field of a Linux arm64 `Image` header: the bytes the image occupies once
/// running (file, .bss, stacks). `None` when `image` has no such header.
pub fn arm64_image_size(image: &[u8]) -> Option<u64> {
    if image.get(ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4)? != b"ARM\x64" {
        return None;
    }
    Some(u64::from_le_bytes(image.get(16..24)?.try_into().ok()?))
}

/// Writes the raw `Image` of an aarch64 ELF (its PT_LOAD segments, flattened), checking that
/// the result starts with the arm64 header.
fn write_arm64_image(elf: &Path, image: &Path) -> Result<()> {
    let bytes = std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
    let flat = crate::elf::flat_binary(&bytes).ok_or_else(|| format!("{} has no loadable segments", elf.display()))?;
    if arm64_image_size(&flat).is_none() {
        return Err(format!("{} does not start with a Linux arm64 Image header", elf.display()).into());
    }
    // Renamed into place: a QEMU of a test running meanwhile reads the old file or the new one.
    write_into_place(image, &flat)
}

/// The cargo binary of the toolchain `./x` installed (Debian's, with std sources).
pub fn cargo() -> String {
    std::env::var("CARGO").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "/usr/bin/cargo".into())
}

/// Builds `apps` for `arch` and returns their image paths.
///
/// Each app is its own cargo invocation: cargo unifies the features of all packages built
/// together, so building `hello` next to an app that enables `libos/fs-ramfs` would put ramfs
/// into `hello` too. Separate invocations keep every image exactly what its app asked for
/// (cargo caches each feature set of `libos` separately, so rebuilds stay incremental).
pub fn build(apps: &[&str], arch: Arch, quiet: bool) -> Result<Vec<PathBuf>> {
    if !arch.is_supported() {
        return Err(format!("libos has no {arch} platform").into());
    }
    let known = self::apps();
    for app in apps {
        if !known.iter().any(|k| k == app) {
            return Err(format!("no app `{app}` (apps: {})", known.join(", ")).into());
        }
    }
    if apps.iter().any(|app| is_c_app(app)) {
        crate::linux::ensure_musl(&[arch])?;
    }
    if apps.contains(&ELF_RUNNER) {
        crate::linux::ensure_elf_samples()?;
    }
    if !quiet {
        eprintln!("==> building {} for {arch}", apps.join(", "));
    }
    for app in apps {
        let mut command = Command::new(cargo());
        command
            .current_dir(root())
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["build", "--release", "--target", arch.target()])
            .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
            // `core` built for aarch64-unknown-none-softfloat trips a future-incompatibility
            // lint in its own (unused) neon intrinsics on every build; it says nothing about
            // our code, whose warnings still show.
            .args(["--config", "future-incompat-report.frequency=\"never\""])
            .arg("--target-dir")
            .arg(guest_target_dir(arch));
        if quiet {
            command.arg("--quiet");
        }
        command.args(["-p", app]);
        if optimizes_for_speed(app) {
            command.args(["--config", "profile.release.opt-level=3"]);
        }
        let status = command.status().map_err(|e| format!("cannot run {}: {e}", cargo()))?;
        if !status.success() {
            return Err(format!("building {app} for {arch} failed").into());
        }
    }
    if arch == Arch::Aarch64 {
        for app in apps {
            write_arm64_image(&elf_path(app, arch), &image_path(app, arch))?;
        }
    }
    Ok(apps.iter().map(|app| image_path(app, arch)).collect())
}

/// elf-runner for `arch` with `program` as `/bin/NAME` and the host tree `files` from `/`, in
/// an initial RAM archive beside a copy of the runner (see [`initrd_of`]): the runner is built
/// once, whatever program it runs, so packing one costs writing an archive, not an LTO link.
/// Each program and files (their paths) get a copy of their own, so boots with different
/// programs never share one; the archive is written anew each time (its files may have
/// changed).
pub fn elf_runner_with(arch: Arch, quiet: bool, program: Option<&Path>, files: Option<&Path>) -> Result<PathBuf> {
    let runner = build(&[ELF_RUNNER], arch, quiet)?.remove(0);
    let mut archive = crate::linux::Cpio::new();
    if let Some(tree) = files {
        archive.tree(tree, "").map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    archive.dir("bin");
    if let Some(program) = program {
        let name = program.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: not a file name", program.display()))?;
        let bytes = std::fs::read(program).map_err(|e| format!("{}: {e}", program.display()))?;
        archive.file(&format!("bin/{name}"), 0o755, &bytes);
    }
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(program, files), &mut hasher);
    let tag = std::hash::Hasher::finish(&hasher);
    let name = runner.file_name().and_then(|n| n.to_str()).ok_or("image name is not UTF-8")?;
    let own = runner.with_file_name(format!("packed-{tag:016x}-{name}"));
    copy_into_place(&runner, &own)?;
    write_into_place(&initrd_of(&own), &archive.finish())?;
    Ok(own)
}

/// The initial RAM archive that goes with `image` when it has one (`IMAGE.initrd` beside it,
/// written by [`elf_runner_with`]): [`crate::qemu::VmConfig::new`] boots an image with its
/// archive, and [`copy_image`] copies both.
pub fn initrd_of(image: &Path) -> PathBuf {
    let mut name = image.file_name().unwrap_or_default().to_os_string();
    name.push(".initrd");
    image.with_file_name(name)
}

/// Copies `image` to `to`, with its initial RAM archive if it has one ([`initrd_of`]).
pub fn copy_image(image: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    copy_into_place(image, to)?;
    let initrd = initrd_of(image);
    if initrd.is_file() {
        copy_into_place(&initrd, &initrd_of(to))?;
    } else if initrd_of(to).is_file() {
        std::fs::remove_file(initrd_of(to))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file renamed over it, so a QEMU still reading
/// the old file keeps reading it, and one starting meanwhile never reads half a file.
fn write_into_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = partial_of(path);
    std::fs::write(&partial, bytes).map_err(|e| format!("writing {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| format!("renaming {} to {}: {e}", partial.display(), path.display()).into())
}

/// Copies `from` to `to` through a temporary file renamed over `to` (see [`write_into_place`]).
fn copy_into_place(from: &Path, to: &Path) -> Result<()> {
    let partial = partial_of(to);
    std::fs::copy(from, &partial).map_err(|e| format!("copying {} to {}: {e}", from.display(), partial.display()))?;
    std::fs::rename(&partial, to).map_err(|e| format!("renaming {} to {}: {e}", partial.display(), to.display()).into())
}

/// Where a file is written before it is renamed to `path` (`PATH.partial`).
fn partial_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// An exclusive lock on `path` (created if missing), released when the lock is dropped.
pub(crate) fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| format!("locking {}: {e}", path.display()).into())
}

/// Builds one app and returns its image path.
pub fn build_app(app: &str, arch: Arch, quiet: bool) -> Result<PathBuf> {
    Ok(build(&[app], arch, quiet)?.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_apps_optimize_for_speed_and_hello_for_size() {
        assert!(optimizes_for_speed("c-bench"));
        assert!(optimizes_for_speed(ELF_RUNNER));
        assert!(!optimizes_for_speed("hello"));
        assert!(!optimizes_for_speed("no-such-app"));
    }
}
