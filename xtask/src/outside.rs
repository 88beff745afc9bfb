//! Test programs from outside this repository, run as a new user would run them: Rust programs
//! published on the Rust registry ([`Tool`]: pjdfstest, fsx), built unmodified as static glibc
//! Linux programs for either architecture, packed into an elf-runner image with their
//! configuration, and booted on a ramfs, a virtio-fs or an ext2 root ([`Root`], [`boot`]).
//! [`crate::pjdfstest`] and [`crate::fsx`] read their results.
//!
//! - **Build** ([`ensure`]): `cargo install` of the published crate with its own lock file,
//!   `crt-static`, aarch64 with `-Zbuild-std` and the cross linker (Debian's Rust ships the
//!   standard library for the host only). Cached per tool and architecture in
//!   `/var/cache/libos/NAME-VERSION-KEY/ARCH/` (KEY hashes the compiler and the flags), so later
//!   clones and CI on the machine reuse it.
//! - **Image** ([`guest_image`]): the program as `/bin/NAME` and the tool's files directory
//!   (`tests/NAME/`) from `/`, copied to `target/NAME/ARCH.image`.
//! - **Roots**: ramfs (the default), a fresh host directory through virtio-fs, or a fresh ext2
//!   image that must be clean for `e2fsck -fn` after the run. Each has an empty `/tmp` (1777)
//!   and `/dev`, `/proc`, `/sys` to mount devfs, procfs and sysfs on.
//!   The guest runs under the process host, as `./x run --elf` does.

use crate::arch::Arch;
use crate::disk::Disk;
use crate::qemu::{self, VmConfig};
use crate::virtiofs::{ROOT_TAG, Share};
use crate::{Result, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A program from the Rust registry, built for the guest.
pub struct Tool {
    /// The crate (and binary) name.
    pub name: &'static str,
    /// The pinned release.
    pub version: &'static str,
    /// Static libraries it links beyond glibc: (Debian package, the file it provides) for
    /// x86_64 and for aarch64.
    pub static_libraries: &'static [[(&'static str, &'static str); 2]],
    /// Adds what the tool runs besides itself (other programs) to the guest's tree, for an
    /// architecture ([`no_extras`]: nothing).
    pub extras: fn(Arch, &Path) -> Result<()>,
}

/// [`Tool::extras`] of a tool that runs no other program.
pub fn no_extras(_: Arch, _: &Path) -> Result<()> {
    Ok(())
}

/// The root file system a tool runs on in the guest (in its `/tmp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// The default root, in memory.
    Ramfs,
    /// A host directory through virtio-fs (virtiofsd).
    Virtiofs,
    /// A fresh ext2 image on virtio-blk; checked with `e2fsck -fn` afterwards.
    Ext2,
}

impl Root {
    /// All three, in the order reports list them.
    pub const ALL: [Root; 3] = [Root::Ramfs, Root::Virtiofs, Root::Ext2];

    /// The name `--root` takes.
    pub fn name(self) -> &'static str {
        match self {
            Root::Ramfs => "ramfs",
            Root::Virtiofs => "virtiofs",
            Root::Ext2 => "ext2",
        }
    }

    /// The roots `--root` names: one, or `all`.
    pub fn parse_list(name: &str) -> Result<Vec<Root>> {
        if name == "all" {
            return Ok(Root::ALL.to_vec());
        }
        let root = Root::ALL.into_iter().find(|r| r.name() == name).ok_or_else(|| format!("no root `{name}` (ramfs, virtiofs, ext2, all)"))?;
        Ok(vec![root])
    }
}

/// The rustc and flags a build uses, for `arch`: (environment, extra cargo arguments).
fn build_setup(arch: Arch) -> (Vec<(&'static str, &'static str)>, Vec<&'static str>) {
    // Static glibc, stripped (the image carries it; symbols would triple its size).
    let mut env = vec![("RUSTC", "/usr/bin/rustc"), ("RUSTFLAGS", "-C target-feature=+crt-static -C strip=symbols")];
    let mut args = vec!["--target", arch.linux_target()];
    if arch == Arch::Aarch64 {
        env.extend([("RUSTC_BOOTSTRAP", "1"), ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "aarch64-linux-gnu-gcc")]);
        args.push("-Zbuild-std=std,panic_unwind");
    }
    (env, args)
}

/// The directory `tool`'s build for `arch` is cached in: its key hashes the release, the
/// compiler's version and the build's flags.
fn cache_dir(tool: &Tool, arch: Arch) -> Result<PathBuf> {
    let rustc = crate::linux::output_of(Command::new("/usr/bin/rustc").arg("-V"))?;
    let (env, args) = build_setup(arch);
    let key = crate::dax_qemu::cache_key(&[format!("{} {rustc} {env:?} {args:?}", tool.version).as_bytes()], &[]);
    Ok(Path::new(crate::dax_qemu::CACHE_ROOT).join(format!("{}-{}-{key}", tool.name, tool.version)).join(arch.name()))
}

/// Where the tools are compiled for `arch`: one directory for all of them, kept, so that the
/// second tool reuses what the first compiled (the standard library `-Zbuild-std` makes for
/// aarch64, and the crates they share: on a fresh machine this saves a minute or more of a
/// first `./x test`). Cargo locks it while a build runs.
fn shared_target_dir(arch: Arch) -> PathBuf {
    Path::new(crate::dax_qemu::CACHE_ROOT).join("outside-target").join(arch.name())
}

/// `tool`'s program for `arch`, built on first use (see the module docs).
pub fn ensure(tool: &Tool, arch: Arch) -> Result<PathBuf> {
    let dir = cache_dir(tool, arch)?;
    let binary = dir.join("bin").join(tool.name);
    if binary.is_file() {
        return Ok(binary);
    }
    let _lock = crate::build::lock_file(&Path::new(crate::dax_qemu::CACHE_ROOT).join(format!("{}.lock", tool.name)))?;
    if binary.is_file() {
        return Ok(binary); // another ./x built it while this one waited
    }
    crate::linux::ensure_elf_samples()?; // glibc's static libraries and the aarch64 cross compiler
    for pair in tool.static_libraries {
        let (package, file) = pair[usize::from(arch == Arch::Aarch64)];
        if !Path::new(file).is_file() {
            eprintln!("==> first use of {}: installing {package}", tool.name);
            crate::linux::apt_install(&[package])?;
        }
    }
    let building = dir.with_extension("build");
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)?;
    eprintln!("==> first use of {}: building {} {} for {arch} into {}", tool.name, tool.name, tool.version, dir.display());
    let started = std::time::Instant::now();
    let (env, args) = build_setup(arch);
    let mut command = Command::new(crate::build::cargo());
    command
        .current_dir(&building)
        .envs(env)
        .args(["install", "--quiet", "--locked", tool.name, "--version", tool.version, "--root"])
        .arg(&building)
        .args(args)
        .env("CARGO_TARGET_DIR", shared_target_dir(arch));
    crate::linux::run_step(&mut command)?;
    std::fs::rename(&building, &dir)?;
    eprintln!("==> built {} for {arch} in {:.0} s", tool.name, started.elapsed().as_secs_f64());
    Ok(binary)
}

/// `tests/NAME/`: the files packed beside `tool`'s program (configuration, `/etc`).
pub fn files_dir(tool: &Tool) -> PathBuf {
    root().join("tests").join(tool.name)
}

/// `target/NAME/`: images and reports.
pub fn target_dir(tool: &Tool) -> PathBuf {
    root().join("target").join(tool.name)
}

/// An elf-runner image for `arch` with `tool`'s program as `/bin/NAME`, and [`files_dir`]
/// with the tool's [`Tool::extras`] from `/`, in its initial RAM archive, both copied to
/// `target/NAME/ARCH.image` (and `ARCH.image.initrd`).
pub fn guest_image(tool: &Tool, arch: Arch) -> Result<PathBuf> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let program = ensure(tool, arch)?;
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let files = target_dir(tool).join(format!("{}.files", arch.name()));
    if files.exists() {
        std::fs::remove_dir_all(&files)?;
    }
    std::fs::create_dir_all(&files)?;
    if files_dir(tool).exists() {
        crate::linux::run_step(Command::new("cp").arg("-a").arg(files_dir(tool).join(".")).arg(&files))?;
    }
    (tool.extras)(arch, &files)?;
    let built = crate::build::elf_runner_with(arch, true, Some(&program), Some(&files))?;
    let image = target_dir(tool).join(format!("{}.image", arch.name()));
    crate::build::copy_image(&built, &image)?;
    Ok(image)
}

/// A root tree for a virtio-fs share or an ext2 image: an empty `/tmp` (mode 1777), and
/// `/dev`, `/proc`, `/sys` for libos to mount devfs, procfs and sysfs on (programs that start
/// others open `/dev/null` and read `/proc/self/exe`).
fn root_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (sub, mode) in [("tmp", 0o1777), ("dev", 0o755), ("proc", 0o555), ("sys", 0o555)] {
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::set_permissions(dir.join(sub), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Boots `tool`'s image for `arch` on a fresh `root` with `args` (the program's path first)
/// and returns how it ended. An ext2 root must be clean for `e2fsck -fn` afterwards.
pub fn boot(tool: &Tool, arch: Arch, root: Root, args: &[String]) -> Result<qemu::Outcome> {
    let image = guest_image(tool, arch)?;
    let work = tempfile::Builder::new().prefix(&format!("libos-{}-{}-{}-", tool.name, arch.name(), root.name())).tempdir()?;
    let mut config = VmConfig::new(arch, image);
    config.accel = crate::accel::choose(arch, None)?.accel;
    config.memory = "256M".into();
    config.timeout = Duration::from_secs(600);
    config.processes = Some(crate::process::DEFAULT_LIMIT);
    let mut options = String::new();
    let disk = work.path().join("root.img");
    match root {
        Root::Ramfs => {}
        Root::Virtiofs => {
            let share_dir = work.path().join("share");
            root_tree(&share_dir)?;
            let share = Share::new(share_dir, ROOT_TAG);
            share.check()?;
            config.shares.push(share);
            options = format!("root=virtiofs:{ROOT_TAG}");
        }
        Root::Ext2 => {
            let tree = work.path().join("tree");
            root_tree(&tree)?;
            crate::disk::create_ext2(&disk, 64 << 20, Some(&tree), None)?;
            config.disks.push(Disk { image: disk.clone(), read_only: false, snapshot: false });
            options = "root=ext2:vda".into();
        }
    }
    config.cmdline = qemu::kernel_cmdline(&options, args);
    let outcome = qemu::run(&config, false)?;
    if root == Root::Ext2 {
        if let Err(report) = crate::disk::check_ext2(&disk)? {
            return Err(format!("{} on libos {arch} ext2: e2fsck -fn after the run:\n{report}\n{}", tool.name, outcome.console).into());
        }
    }
    Ok(outcome)
}
