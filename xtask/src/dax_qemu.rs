//! A QEMU with a virtio-fs DAX window, built from source on first use.
//!
//! Stock QEMU 10.0 has no DAX window for `vhost-user-fs-pci` (see `notes/virtio-fs.md`). This
//! module builds the QEMU the machine already runs (10.0.2, from bookworm-backports) with the
//! patches of `tools/qemu-dax/` (see its README): a `cache-size` property that gives the device
//! its window as a 64-bit PCI BAR with a shared-memory capability, and the vhost-user
//! `SHMEM_MAP`/`SHMEM_UNMAP` requests by which a daemon maps files into it.
//!
//! [`ensure`] returns the patched `qemu-system-x86_64` or `qemu-system-aarch64`. The first call
//! on a machine:
//!
//! 1. installs the build dependencies with apt ([`ensure_build_deps`]; meson and pycotap from
//!    bookworm-backports, which QEMU 10 needs newer than bookworm's);
//! 2. downloads Debian's upstream tarball `qemu_10.0.2+ds.orig.tar.xz` from the location
//!    `apt-get source --print-uris` gives (after adding `deb-src` entries for backports with
//!    [`debian::ensure_backports_deb_src`]) and checks it against apt's signed index and the
//!    hash pinned here ([`ORIG_SHA256`]); kept under `/var/cache/libos/downloads/`;
//! 3. unpacks it, applies the patches, configures only the two system emulators with what
//!    libos's boots use (TCG and KVM, slirp, vhost-user, virtio, q35/microvm/virt, the
//!    system's firmware directories) and builds with two jobs (the machine has two cores and
//!    other work runs on it);
//! 4. installs into `/var/cache/libos/qemu-10.0.2-dax-KEY/` ([`install_dir`]), `KEY` being a
//!    hash of the patches and the configure options: later clones and CI runs on the same
//!    machine reuse it, and a changed patch gets a new directory. The build happens in
//!    `KEY.build/` beside it and is renamed into place when complete, so an interrupted build
//!    is redone. The install directory holds `bin/` (the two emulators), `build.log` and the
//!    patches it was built from (after a failure, the log is in `KEY.build/`).
//!
//! Later calls check one file (and within one process, not even that). `./x dax-qemu` runs
//! the build alone and prints the two paths.

use crate::arch::Arch;
use crate::linux::{apt_install, run_step};
use crate::servers::debian;
use crate::{Result, root};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The upstream QEMU version built (the one bookworm-backports ships).
pub const QEMU_VERSION: &str = "10.0.2";

/// Debian's upstream tarball of [`QEMU_VERSION`] (`+ds`: Debian removed the prebuilt
/// firmware blobs and bundled wheels).
pub const ORIG_TARBALL: &str = "qemu_10.0.2+ds.orig.tar.xz";

/// The SHA-256 of [`ORIG_TARBALL`] (as the signed `Sources` index of bookworm-backports lists
/// it): the cache key does not include the tarball, so it must never change under us.
pub const ORIG_SHA256: &str = "0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1";

/// Where the built QEMU and the downloaded tarball live: outside the checkout, so that every
/// clone on the machine shares them.
pub const CACHE_ROOT: &str = "/var/cache/libos";

/// Parallel compile jobs: the machine has two cores.
const JOBS: &str = "2";

/// `configure` options besides `--prefix`: only the two system emulators, every optional
/// feature off unless named (no docs, tools, guest agent, user-mode emulators, GUIs or VNC),
/// the firmware looked up where Debian's QEMU looks (qboot, SeaBIOS, iPXE option ROMs of
/// `qemu-system-data`, `seabios` and `ipxe-qemu`), Debian's libslirp and libfdt, the `log`
/// trace backend (`-trace EVENT` counts device traffic in the benchmarks); `--version` says
/// `QEMU emulator version 10.0.2 (libos DAX window)`.
pub const CONFIGURE_OPTIONS: &[&str] = &[
    "--target-list=x86_64-softmmu,aarch64-softmmu",
    "--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu",
    "--python=/usr/bin/python3",
    "--without-default-features",
    "--disable-download",
    "--disable-docs",
    "--disable-tools",
    "--disable-guest-agent",
    "--disable-user",
    "--disable-install-blobs",
    "--disable-debug-info",
    "--disable-werror",
    "--enable-system",
    "--enable-tcg",
    "--enable-kvm",
    "--enable-slirp",
    "--enable-fdt=system",
    "--enable-pixman",
    "--enable-vhost-user",
    "--enable-vhost-kernel",
    "--enable-trace-backends=log",
    "--with-pkgversion=libos DAX window",
];

/// `tools/qemu-dax/`: the patches and their README.
pub fn patch_dir() -> PathBuf {
    root().join("tools/qemu-dax")
}

/// The patches of [`patch_dir`] in the order they apply (by name), with their contents.
pub fn patches() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = patch_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no *.patch in {}", dir.display()).into());
    }
    paths.into_iter().map(|p| Ok((p.clone(), std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?))).collect()
}

/// The cache key of a build: 64-bit FNV-1a over the patches (each with its length, so that
/// bytes cannot move between them) and the configure options, in hex. Not a security
/// measure, only a name that changes when what is built changes.
pub fn cache_key(patches: &[&[u8]], options: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for patch in patches {
        eat(patch);
    }
    for option in options {
        eat(option.as_bytes());
    }
    format!("{hash:016x}")
}

/// The name of the install directory for cache key `key`.
pub fn install_dir_name(key: &str) -> String {
    format!("qemu-{QEMU_VERSION}-dax-{key}")
}

/// The install directory of the current patches and options (whether built or not).
pub fn install_dir() -> Result<PathBuf> {
    let patches = patches()?;
    let contents: Vec<&[u8]> = patches.iter().map(|(_, c)| c.as_slice()).collect();
    Ok(Path::new(CACHE_ROOT).join(install_dir_name(&cache_key(&contents, CONFIGURE_OPTIONS))))
}

/// The patched QEMU system emulator of `arch`, built on first use.
pub fn ensure(arch: Arch) -> Result<PathBuf> {
    Ok(ensure_installed()?.join("bin").join(arch.qemu()))
}

/// The install directory with both emulators, built on first use.
pub fn ensure_installed() -> Result<PathBuf> {
    // One check per process (tests boot from parallel threads), one build per machine at a
    // time (a lock file: a second ./x waits for the first one's build).
    static CHECKED: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = checked.as_ref() {
        return Ok(dir.clone());
    }
    let dir = install_dir()?;
    if !is_complete(&dir) {
        std::fs::create_dir_all(CACHE_ROOT).map_err(|e| format!("cannot create {CACHE_ROOT} (root needed): {e}"))?;
        let lock_path = Path::new(CACHE_ROOT).join("qemu-dax.lock");
        let lock_file = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        let _lock = match nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((file, _)) => {
                eprintln!("==> waiting for another ./x that is building the DAX QEMU (lock {})", lock_path.display());
                nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                    .map_err(|(_, e)| format!("{}: {e}", lock_path.display()))?
            }
        };
        if !is_complete(&dir) {
            build(&dir)?;
        }
    }
    *checked = Some(dir.clone());
    Ok(dir)
}

/// A finished install has both emulators (the directory appears only when complete).
fn is_complete(dir: &Path) -> bool {
    [Arch::X86_64, Arch::Aarch64].iter().all(|a| dir.join("bin").join(a.qemu()).is_file())
}

/// The packages the build needs: (a file that shows the package is installed, the package).
/// `meson` and `python3-pycotap` come from bookworm-backports (QEMU 10 wants meson 1.5;
/// its configure checks for pycotap with meson).
const BUILD_DEPS: &[(&str, &str)] = &[
    ("/usr/bin/gcc", "gcc"),
    ("/usr/bin/patch", "patch"),
    ("/usr/bin/xz", "xz-utils"),
    ("/usr/bin/curl", "curl"),
    ("/usr/bin/ninja", "ninja-build"),
    ("/usr/bin/pkg-config", "pkgconf"),
    ("/usr/bin/flex", "flex"),
    ("/usr/bin/bison", "bison"),
    ("/usr/lib/python3/dist-packages/pycotap", "python3-pycotap/bookworm-backports"),
    ("/usr/include/glib-2.0/glib.h", "libglib2.0-dev"),
    ("/usr/include/pixman-1/pixman.h", "libpixman-1-dev"),
    ("/usr/include/slirp/libslirp.h", "libslirp-dev"),
    ("/usr/include/libfdt.h", "libfdt-dev"),
    ("/usr/include/zlib.h", "zlib1g-dev"),
];

/// The oldest meson QEMU 10.0 accepts.
const MESON_MIN: (u32, u32) = (1, 5);

/// Installs what building QEMU needs, when missing.
pub fn ensure_build_deps() -> Result<()> {
    let mut packages: Vec<&str> = BUILD_DEPS.iter().filter(|(file, _)| !Path::new(file).exists()).map(|(_, p)| *p).collect();
    let meson = Command::new("/usr/bin/meson").arg("--version").output().ok().filter(|o| o.status.success());
    if meson.and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout))).is_none_or(|v| v < MESON_MIN) {
        packages.push("meson/bookworm-backports");
    }
    // configure makes a virtual environment (python3-venv gives it ensurepip).
    if !Command::new("/usr/bin/python3").args(["-c", "import ensurepip, venv"]).output().is_ok_and(|o| o.status.success()) {
        packages.push("python3-venv");
    }
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("==> first use of the DAX QEMU: installing its build dependencies: {}", packages.join(" "));
    apt_install(&packages)
}

/// `1.7.0` -> (1, 7).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The Debian version of the `qemu` source package whose upstream part is [`QEMU_VERSION`],
/// from `apt-cache showsrc qemu` output (any Debian revision: they share the upstream tarball).
pub fn pick_source_version(showsrc: &str) -> Option<String> {
    let upstream = format!("{QEMU_VERSION}+ds-");
    showsrc
        .lines()
        .filter_map(|l| l.strip_prefix("Version:"))
        .map(str::trim)
        .find(|v| debian::without_epoch(v).starts_with(&upstream))
        .map(str::to_string)
}

/// One file of `apt-get source --print-uris`: `'URI' NAME SIZE SHA256:HEX`.
#[derive(Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Where apt would download it from.
    pub uri: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// The line of `apt-get source --print-uris` output for file `name`.
pub fn parse_print_uris(output: &str, name: &str) -> Option<SourceFile> {
    output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let uri = words.next()?.strip_prefix('\'')?.strip_suffix('\'')?;
        if words.next()? != name {
            return None;
        }
        let size = words.next()?.parse().ok()?;
        let sha256 = words.next()?.strip_prefix("SHA256:")?.to_ascii_lowercase();
        Some(SourceFile { uri: uri.to_string(), size, sha256 })
    })
}

/// The SHA-256 of a file, by `sha256sum`.
fn sha256_of(path: &Path) -> Result<String> {
    let output = Command::new("sha256sum").arg(path).output().map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().next().filter(|_| output.status.success()).map(str::to_string).ok_or_else(|| format!("sha256sum {} failed", path.display()).into())
}

/// Standard output of `command` (stderr passes through), failing with its status.
fn stdout_of(command: &mut Command) -> Result<String> {
    let output = command.stderr(Stdio::inherit()).output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{command:?} failed with {}", output.status).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// [`ORIG_TARBALL`] under `CACHE_ROOT/downloads/`, downloaded once and checked.
pub fn ensure_tarball() -> Result<PathBuf> {
    let dir = Path::new(CACHE_ROOT).join("downloads");
    let tarball = dir.join(ORIG_TARBALL);
    if tarball.is_file() && sha256_of(&tarball)? == ORIG_SHA256 {
        return Ok(tarball);
    }
    std::fs::create_dir_all(&dir)?;
    debian::ensure_backports_deb_src()?;
    let showsrc = || stdout_of(Command::new("apt-cache").args(["showsrc", "qemu"]));
    let version = match pick_source_version(&showsrc()?) {
        Some(v) => v,
        None => {
            // The lists may predate the deb-src entries: refresh once.
            apt_install(&[])?;
            pick_source_version(&showsrc()?)
                .ok_or(format!("apt offers no source of qemu {QEMU_VERSION} (is bookworm-backports still at it? then update dax_qemu.rs)"))?
        }
    };
    let uris = stdout_of(Command::new("apt-get").args(["source", "--print-uris", "-q", &format!("qemu={version}")]).current_dir(&dir))?;
    let file = parse_print_uris(&uris, ORIG_TARBALL).ok_or(format!("`apt-get source --print-uris qemu={version}` lists no {ORIG_TARBALL}"))?;
    if file.sha256 != ORIG_SHA256 {
        return Err(format!("apt lists {ORIG_TARBALL} with SHA-256 {}, not the {ORIG_SHA256} pinned in dax_qemu.rs", file.sha256).into());
    }
    eprintln!("==> downloading {ORIG_TARBALL} ({} MB, Debian qemu {version})", file.size / 1_000_000);
    let partial = dir.join(format!("{ORIG_TARBALL}.part"));
    run_step(Command::new("curl").args(["-fsSL", "--retry", "3", "-o"]).arg(&partial).arg(&file.uri))?;
    let size = std::fs::metadata(&partial)?.len();
    let sha256 = sha256_of(&partial)?;
    if size != file.size || sha256 != file.sha256 {
        return Err(format!("{}: {size} bytes with SHA-256 {sha256}; apt lists {} bytes with {}", partial.display(), file.size, file.sha256).into());
    }
    std::fs::rename(&partial, &tarball)?;
    Ok(tarball)
}

/// Runs a build step with its output appended to `log`; on failure, points at the log.
fn logged(command: &mut Command, log: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(file, "\n+ {}", format!("{command:?}").replace('"', ""))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !status.success() {
        return Err(format!("{command:?} failed with {status}; see {}", log.display()).into());
    }
    Ok(())
}

/// Builds QEMU into `dir` (see the module documentation).
fn build(dir: &Path) -> Result<()> {
    let started = Instant::now();
    ensure_build_deps()?;
    let tarball = ensure_tarball()?;
    let patches = patches()?;
    let name = dir.file_name().and_then(|n| n.to_str()).ok_or("the install directory has no name")?;
    let work = dir.with_file_name(format!("{name}.build"));
    if work.exists() {
        eprintln!("==> removing the unfinished build {}", work.display());
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let log = work.join("build.log");
    eprintln!(
        "==> first use: building QEMU {QEMU_VERSION} with the DAX window patches into {} \
         (two jobs; 8 to 20 minutes on two cores; log {})",
        dir.display(),
        log.display()
    );
    run_step(Command::new("tar").args(["-xf"]).arg(&tarball).arg("--no-same-owner").arg("-C").arg(&work))?;
    let source = work.join(format!("qemu-{QEMU_VERSION}"));
    for (patch, _) in &patches {
        run_step(Command::new("patch").args(["-p1", "--forward", "--batch", "--quiet", "-i"]).arg(patch).current_dir(&source))?;
    }
    let build = work.join("build");
    std::fs::create_dir_all(&build)?;
    // PATH with /usr/bin first: Debian's python3 and meson, not a pyenv or venv shim.
    let path = format!("/usr/bin:/bin:{}", std::env::var("PATH").unwrap_or_default());
    let mut prefix = std::ffi::OsString::from("--prefix=");
    prefix.push(dir);
    logged(Command::new(source.join("configure")).arg(prefix).args(CONFIGURE_OPTIONS).env("PATH", &path).current_dir(&build), &log)?;
    eprintln!("    configured; compiling (ninja -j{JOBS})");
    // Only the emulators: `ninja` alone would also build QEMU's tests (a third more work).
    let emulators = [Arch::X86_64.qemu(), Arch::Aarch64.qemu()];
    logged(Command::new("ninja").args(["-j", JOBS]).args(emulators).env("PATH", &path).current_dir(&build), &log)?;
    // The install is the two binaries: they find the firmware in the system's directories
    // (--firmwarepath) and need nothing else from QEMU's data directory for libos's boots.
    let staged = work.join("install");
    std::fs::create_dir_all(staged.join("bin"))?;
    for emulator in emulators {
        std::fs::copy(build.join(emulator), staged.join("bin").join(emulator))?;
    }
    let seconds = started.elapsed().as_secs();
    writeln!(std::fs::OpenOptions::new().append(true).open(&log)?, "\nbuilt in {seconds} s")?;
    std::fs::copy(&log, staged.join("build.log"))?;
    for (patch, contents) in &patches {
        std::fs::write(staged.join(patch.file_name().unwrap_or_default()), contents)?;
    }
    if !is_complete(&staged) {
        return Err(format!("the install in {} lacks an emulator; see {}", staged.display(), log.display()).into());
    }
    std::fs::rename(&staged, dir)?;
    std::fs::remove_dir_all(&work)?;
    eprintln!("==> built the DAX QEMU in {}m{:02}s: {}", seconds / 60, seconds % 60, dir.display());
    Ok(())
}

/// `./x dax-qemu`: builds the patched QEMU when needed and prints the emulators' paths.
pub fn main(args: Vec<String>) -> Result<i32> {
    if let Some(arg) = args.first() {
        return Err(format!("./x dax-qemu takes no arguments (got `{arg}`)").into());
    }
    let dir = ensure_installed()?;
    let paths: String = [Arch::X86_64, Arch::Aarch64].iter().map(|a| format!("{}\n", dir.join("bin").join(a.qemu()).display())).collect();
    // `./x dax-qemu | head -n 1` closes the pipe early: not an error.
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(paths.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_changes_with_the_patches_and_the_options() {
        let key = cache_key(&[b"a", b"b"], &["--x"]);
        assert_eq!(key.len(), 16);
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key, cache_key(&[b"a", b"b"], &["--x"]));
        assert_ne!(key, cache_key(&[b"a", b"c"], &["--x"]));
        assert_ne!(key, cache_key(&[b"ab"], &["--x"]), "bytes cannot move between patches");
        assert_ne!(key, cache_key(&[b"a", b"b"], &["--y"]));
        assert_eq!(install_dir_name("0123456789abcdef"), "qemu-10.0.2-dax-0123456789abcdef");
    }

    #[test]
    fn the_patches_of_the_repository_give_the_cache_directory() {
        let dir = install_dir().unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(dir.starts_with(CACHE_ROOT));
        assert!(name.starts_with("qemu-10.0.2-dax-") && name.len() == "qemu-10.0.2-dax-".len() + 16, "{name}");
    }

    #[test]
    fn the_source_version_is_any_debian_revision_of_the_upstream_version() {
        let showsrc = "Package: qemu\nVersion: 1:7.2+dfsg-7+deb12u18\n\nPackage: qemu\nVersion: 1:10.0.2+ds-2+deb13u1~bpo12+1\n";
        assert_eq!(pick_source_version(showsrc).as_deref(), Some("1:10.0.2+ds-2+deb13u1~bpo12+1"));
        assert_eq!(pick_source_version("Version: 1:10.0.20+ds-1\nVersion: 1:10.1.0+ds-1\n"), None);
    }

    #[test]
    fn print_uris_lines_give_uri_size_and_hash() {
        let output = "Need to get 39.6 MB of source archives.\n\
            'http://mirror.invalid/q/qemu_10.0.2%2bds-2.dsc' qemu_10.0.2+ds-2.dsc 11887 SHA256:a9ee\n\
            'http://mirror.invalid/q/qemu_10.0.2%2bds.orig.tar.xz' qemu_10.0.2+ds.orig.tar.xz 39449628 SHA256:0901DA\n";
        assert_eq!(
            parse_print_uris(output, ORIG_TARBALL),
            Some(SourceFile { uri: "http://mirror.invalid/q/qemu_10.0.2%2bds.orig.tar.xz".into(), size: 39449628, sha256: "0901da".into() })
        );
        assert_eq!(parse_print_uris(output, "other.tar.xz"), None);
    }

    #[test]
    fn meson_versions() {
        assert_eq!(parse_version("1.7.0\n"), Some((1, 7)));
        assert!(parse_version("1.0.1").unwrap() < MESON_MIN);
        assert_eq!(parse_version("garbage"), None);
    }
}
