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

/// The image of `app` for `arch` as [`build`] returns it: for elf-runner a copy taken, under a
/// lock, after every build of it (`plain-elf-runner`, `plain-elf-runner.Image`), which
/// programs packed for it ([`build_with_env`]) are copied from and which a rebuild in progress
/// never leaves half-written; for every other app its image.
pub fn stable_image_path(app: &str, arch: Arch) -> PathBuf {
    let image = image_path(app, arch);
    if app != ELF_RUNNER {
        return image;
    }
    let name = image.file_name().and_then(|n| n.to_str()).unwrap_or(ELF_RUNNER).to_string();
    image.with_file_name(format!("plain-{name}"))
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
    std::fs::write(image, &flat).map_err(|e| format!("cannot write {}: {e}", image.display()))?;
    Ok(())
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
    build_plain(apps, arch, quiet)
}

/// [`build`], with the programs and files `env` names for elf-runner: `LIBOS_ELF` (a program,
/// as `/bin/NAME`) and `LIBOS_FILES` (a host tree, from `/`). Those go into an initial RAM
/// archive beside a copy of the plain runner (see [`initrd_of`]): the runner is built once,
/// whatever program it runs, so packing one costs writing an archive, not an LTO link.
pub fn build_with_env(apps: &[&str], arch: Arch, quiet: bool, env: &[(&str, &str)]) -> Result<Vec<PathBuf>> {
    if env.is_empty() {
        return build_plain(apps, arch, quiet);
    }
    if apps != [ELF_RUNNER] {
        return Err(format!("programs and files (LIBOS_ELF, LIBOS_FILES) go to {ELF_RUNNER} alone, not to {}", apps.join(", ")).into());
    }
    let mut program = None;
    let mut files = None;
    for &(name, value) in env {
        match name {
            "LIBOS_ELF" if !value.is_empty() => program = Some(PathBuf::from(value)),
            "LIBOS_FILES" if !value.is_empty() => files = Some(PathBuf::from(value)),
            "LIBOS_ELF" | "LIBOS_FILES" => {}
            other => return Err(format!("{ELF_RUNNER} reads no {other}").into()),
        }
    }
    let plain = build_plain(apps, arch, quiet)?.remove(0);
    let mut archive = crate::linux::Cpio::new();
    if let Some(tree) = &files {
        archive.tree(tree, "").map_err(|e| format!("LIBOS_FILES={}: {e}", tree.display()))?;
    }
    archive.dir("bin");
    if let Some(program) = &program {
        let name = program.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("LIBOS_ELF={}: not a file name", program.display()))?;
        let bytes = std::fs::read(program).map_err(|e| format!("LIBOS_ELF={}: {e}", program.display()))?;
        archive.file(&format!("bin/{name}"), 0o755, &bytes);
    }
    // One copy per program and files (their paths), so boots with different programs never
    // share one; the archive is written anew each time (its files may have changed).
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(env, &mut hasher);
    let tag = std::hash::Hasher::finish(&hasher);
    let name = plain.file_name().and_then(|n| n.to_str()).ok_or("image name is not UTF-8")?;
    let name = name.strip_prefix("plain-").unwrap_or(name);
    let own = plain.with_file_name(format!("packed-{tag:016x}-{name}"));
    copy_into_place(&plain, &own)?;
    let initrd = initrd_of(&own);
    let partial = partial_of(&initrd);
    std::fs::write(&partial, archive.finish()).map_err(|e| format!("writing {}: {e}", partial.display()))?;
    std::fs::rename(&partial, &initrd).map_err(|e| format!("renaming {} to {}: {e}", partial.display(), initrd.display()))?;
    Ok(vec![own])
}

/// The initial RAM archive that goes with `image` when it has one (`IMAGE.initrd` beside it,
/// written by [`build_with_env`]): [`crate::qemu::VmConfig::new`] boots an image with its
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

/// Builds `apps` for `arch` as they are (see [`build`]).
fn build_plain(apps: &[&str], arch: Arch, quiet: bool) -> Result<Vec<PathBuf>> {
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
    // elf-runner is copied to `stable_image_path` under a lock held from the build to the copy.
    let _lock = if apps.contains(&ELF_RUNNER) { Some(lock_file(&guest_target_dir(arch).join("elf-runner.lock"))?) } else { None };
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
    if apps.contains(&ELF_RUNNER) {
        copy_into_place(&image_path(ELF_RUNNER, arch), &stable_image_path(ELF_RUNNER, arch))?;
    }
    Ok(apps.iter().map(|app| stable_image_path(app, arch)).collect())
}

/// Copies `from` to `to` through a temporary file renamed over `to`, so a QEMU still reading
/// the old `to` keeps reading the old file.
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
