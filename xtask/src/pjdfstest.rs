//! pjdfstest, the POSIX file-system test suite, on libos as a new user would run it (issue 18):
//! the suite's Rust rewrite (`pjdfstest` [`VERSION`] from the Rust registry, one process that
//! runs every case itself and reports `ok`, `FAILED` or `skipped` per case), built as an
//! unmodified static Linux program for either architecture, run by elf-runner on a ramfs, a
//! virtio-fs or an ext2 root, and on the host's own file system for comparison
//! (`./x pjdfstest`, `tests/tests/pjdfstest.rs`).
//!
//! - **Build** ([`ensure`]): `cargo install` of the published crate with its own lock file,
//!   glibc static (`crt-static`; it links libacl for its NFSv4 ACL cases, which need a feature
//!   left off), aarch64 with `-Zbuild-std` and the cross linker. Cached per architecture in
//!   `/var/cache/libos/pjdfstest-VERSION-KEY/` (KEY hashes the compiler and the flags), so
//!   later clones and CI on the machine reuse it (about 30 s for x86_64 and 80 s for aarch64
//!   on two idle cores).
//! - **Files** (`tests/pjdfstest/`): the configuration and an `/etc/passwd` and `/etc/group`
//!   with the second unprivileged user (`tests`) the suite switches to, packed into the image
//!   beside the program.
//! - **Host run** ([`run_host`]): the same binary and configuration as root on a directory
//!   under `target/`, inside a mount namespace where `/etc/passwd` and `/etc/group` gain the
//!   `tests` user (bind mounts; the host's files are not changed).
//! - **Verdict** ([`Report::unexpected`]): every case passes, except the [`KNOWN_FAILURES`],
//!   and is skipped only for a reason in [`EXPECTED_SKIPS`].

use crate::arch::Arch;
use crate::disk::Disk;
use crate::qemu::{self, Exit, VmConfig};
use crate::virtiofs::{Share, ROOT_TAG};
use crate::{root, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The pjdfstest release (its Rust rewrite) on the Rust registry.
pub const VERSION: &str = "0.2.2";

/// Cases that fail on libos, with why. Each needs more than one process sharing a kernel.
pub const KNOWN_FAILURES: &[(&str, &str)] = &[
    (
        "open::etxtbsy",
        "runs `which sleep` and a copy of `sleep` in a child process (neither program is in the image); and since every libos process is a VM of its own, a file one VM executes is not write-protected (ETXTBSY) in another",
    ),
    ("truncate::etxtbsy", "as open::etxtbsy"),
    (
        "rmdir::ebusy",
        "runs `mount --bind` in a child process (not in the image); a child VM's mount would not reach its parent's file systems either",
    ),
];

/// Reasons a case may be skipped, the same on the host: the configuration allows no remount
/// (EROFS cases) and names no second file system (EXDEV cases); glibc's `pathconf` reports
/// no link limit for file systems it does not know (ramfs, FUSE), as on Linux's tmpfs and
/// virtiofs.
pub const EXPECTED_SKIPS: &[&str] = &[
    "Remounts (allow_remount) are not allowed in the configuration file",
    "No secondary file-system has been configured.",
    "Cannot get value for LINK_MAX: filesystem limit is unknown",
];

/// The root file system the suite runs on in the guest (in its `/tmp`).
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

    /// The root named `name`.
    pub fn parse(name: &str) -> Result<Root> {
        Root::ALL.into_iter().find(|r| r.name() == name).ok_or_else(|| format!("no root `{name}` (ramfs, virtiofs, ext2)").into())
    }
}

/// What one case did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`.
    Passed,
    /// `FAILED`, with the suite's message (the panic it caught).
    Failed(String),
    /// `skipped`, with the reasons it gave.
    Skipped(String),
}

/// One run of the suite: every case it listed, by name (`open::etxtbsy`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Outcome per case.
    pub cases: BTreeMap<String, Outcome>,
}

impl Report {
    /// Reads the suite's output: a line `NAME   ok|FAILED|skipped|PASSED UNEXPECTEDLY` per
    /// case (colours and `\r` removed first), followed by indented lines that say why.
    pub fn parse(output: &str) -> Report {
        let mut cases = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in output.lines().map(strip_colours) {
            let line = line.trim_end_matches('\r');
            if let Some(detail) = line.strip_prefix('\t') {
                if let Some(Outcome::Failed(text) | Outcome::Skipped(text)) = last.as_ref().and_then(|n| cases.get_mut(n)) {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(detail.trim());
                }
                continue;
            }
            last = None;
            let mut words = line.split_whitespace();
            let (Some(name), Some(first)) = (words.next(), words.next()) else { continue };
            let rest: Vec<&str> = words.collect();
            let outcome = match (first, rest.as_slice()) {
                ("ok", []) => Outcome::Passed,
                ("FAILED", []) | ("PASSED", ["UNEXPECTEDLY"]) => Outcome::Failed(String::new()),
                ("skipped", []) => Outcome::Skipped(String::new()),
                _ => continue,
            };
            if name.contains("::") {
                cases.insert(name.to_string(), outcome);
                last = Some(name.to_string());
            }
        }
        Report { cases }
    }

    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.cases.values().filter(|o| f(o)).count();
        (count(|o| *o == Outcome::Passed), count(|o| matches!(o, Outcome::Failed(_))), count(|o| matches!(o, Outcome::Skipped(_))))
    }

    /// Cases that neither passed nor failed or were skipped as expected: a failure not in
    /// [`KNOWN_FAILURES`], a skip for a reason not in [`EXPECTED_SKIPS`]; each with its text.
    pub fn unexpected(&self) -> Vec<(String, Outcome)> {
        self.cases
            .iter()
            .filter(|(name, outcome)| match outcome {
                Outcome::Passed => false,
                Outcome::Failed(_) => !KNOWN_FAILURES.iter().any(|(known, _)| known == name),
                Outcome::Skipped(reason) => !reason.lines().all(|r| EXPECTED_SKIPS.contains(&r)),
            })
            .map(|(name, outcome)| (name.clone(), outcome.clone()))
            .collect()
    }

    /// Cases whose outcome differs from `other`'s, in name order: (name, ours, theirs).
    pub fn differences<'a>(&'a self, other: &'a Report) -> Vec<(&'a str, Option<&'a Outcome>, Option<&'a Outcome>)> {
        let mut names: Vec<&str> = self.cases.keys().chain(other.cases.keys()).map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|n| (n, self.cases.get(n), other.cases.get(n)))
            .filter(|(_, ours, theirs)| ours.map(std::mem::discriminant) != theirs.map(std::mem::discriminant))
            .collect()
    }
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `tests/pjdfstest/`: the configuration and the `/etc` files packed beside the program.
pub fn files_dir() -> PathBuf {
    root().join("tests/pjdfstest")
}

fn target_dir() -> PathBuf {
    root().join("target/pjdfstest")
}

/// The rustc and flags a build uses, for `arch`: (environment, extra cargo arguments).
fn build_setup(arch: Arch) -> (Vec<(&'static str, &'static str)>, Vec<&'static str>) {
    // Static glibc, stripped (the image carries it; symbols would triple its size).
    let mut env = vec![("RUSTC", "/usr/bin/rustc"), ("RUSTFLAGS", "-C target-feature=+crt-static -C strip=symbols")];
    let mut args = vec!["--target", arch.linux_target()];
    if arch == Arch::Aarch64 {
        // Debian's Rust ships the standard library for the host only: build it from source.
        env.extend([("RUSTC_BOOTSTRAP", "1"), ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "aarch64-linux-gnu-gcc")]);
        args.push("-Zbuild-std=std,panic_unwind");
    }
    (env, args)
}

/// The directory the build for `arch` is cached in: its key hashes the release, the
/// compiler's version and the build's flags.
fn cache_dir(arch: Arch) -> Result<PathBuf> {
    let rustc = crate::linux::output_of(Command::new("/usr/bin/rustc").arg("-V"))?;
    let (env, args) = build_setup(arch);
    let key = crate::dax_qemu::cache_key(&[format!("{VERSION} {rustc} {env:?} {args:?}").as_bytes()], &[]);
    Ok(Path::new(crate::dax_qemu::CACHE_ROOT).join(format!("pjdfstest-{VERSION}-{key}")).join(arch.name()))
}

/// The pjdfstest program for `arch`, built on first use (see the module docs).
pub fn ensure(arch: Arch) -> Result<PathBuf> {
    let dir = cache_dir(arch)?;
    let binary = dir.join("bin/pjdfstest");
    if binary.is_file() {
        return Ok(binary);
    }
    let _lock = crate::build::lock_file(&Path::new(crate::dax_qemu::CACHE_ROOT).join("pjdfstest.lock"))?;
    if binary.is_file() {
        return Ok(binary); // another ./x built it while this one waited
    }
    crate::linux::ensure_elf_samples()?; // glibc's static libraries and the aarch64 cross compiler
    let acl = match arch {
        Arch::X86_64 => ("libacl1-dev", "/usr/lib/x86_64-linux-gnu/libacl.a"),
        Arch::Aarch64 => ("libacl1-dev:arm64", "/usr/lib/aarch64-linux-gnu/libacl.a"),
    };
    if !Path::new(acl.1).is_file() {
        eprintln!("==> first use of pjdfstest: installing {}", acl.0);
        crate::linux::apt_install(&[acl.0])?;
    }
    let building = dir.with_extension("build");
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building)?;
    eprintln!("==> first use of pjdfstest: building pjdfstest {VERSION} for {arch} into {}", dir.display());
    let started = std::time::Instant::now();
    let (env, args) = build_setup(arch);
    let mut command = Command::new(crate::build::cargo());
    command
        .current_dir(&building)
        .envs(env)
        .args(["install", "--quiet", "--locked", "pjdfstest", "--version", VERSION, "--root"])
        .arg(&building)
        .args(args)
        .env("CARGO_TARGET_DIR", building.join("target"));
    crate::linux::run_step(&mut command)?;
    let _ = std::fs::remove_dir_all(building.join("target"));
    std::fs::rename(&building, &dir)?;
    eprintln!("==> built pjdfstest for {arch} in {:.0} s", started.elapsed().as_secs_f64());
    Ok(binary)
}

/// An elf-runner image for `arch` with pjdfstest as `/bin/pjdfstest` and [`files_dir`] from
/// `/`, copied to `target/pjdfstest/ARCH.image` (another `./x run --elf` rebuilds the one in
/// `target/guest`).
pub fn guest_image(arch: Arch) -> Result<PathBuf> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let program = ensure(arch)?;
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let files = files_dir();
    let env = [("LIBOS_ELF", program.to_str().ok_or("non-UTF-8 path")?), ("LIBOS_FILES", files.to_str().ok_or("non-UTF-8 path")?)];
    let built = crate::build::build_with_env(&[crate::build::ELF_RUNNER], arch, true, &env)?.remove(0);
    let image = target_dir().join(format!("{}.image", arch.name()));
    std::fs::create_dir_all(target_dir())?;
    std::fs::copy(&built, &image).map_err(|e| format!("copying {} to {}: {e}", built.display(), image.display()))?;
    Ok(image)
}

/// The suite's command line in the guest: every case (or those matching `patterns`) in `/tmp`.
fn guest_args(patterns: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["/bin/pjdfstest", "-c", "/pjdfstest.toml", "-p", "/tmp"].map(String::from).to_vec();
    args.extend(patterns.iter().cloned());
    args
}

/// A root tree for a virtio-fs share or an ext2 image: an empty `/tmp` (mode 1777).
fn root_tree(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

/// Runs the suite in a libos guest for `arch` on `root`, as `./x run --elf` would (with the
/// process host, so the cases that start programs get as far as they can), and returns its
/// report and the console. An ext2 root must be clean for `e2fsck -fn` afterwards.
pub fn run_guest(arch: Arch, root: Root, patterns: &[String]) -> Result<(Report, String)> {
    let image = guest_image(arch)?;
    let work = tempfile::Builder::new().prefix(&format!("libos-pjdfstest-{}-{}-", arch.name(), root.name())).tempdir()?;
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
    config.cmdline = qemu::kernel_cmdline(&options, &guest_args(patterns));
    let outcome = qemu::run(&config, false)?;
    match outcome.exit {
        // The suite exits 1 when a case failed; anything else is a crash or a hang.
        Exit::Code(0 | 1) => {}
        _ => return Err(format!("pjdfstest on libos {arch} {}: {:?}\n{}", root.name(), outcome.exit, outcome.console).into()),
    }
    if root == Root::Ext2 {
        if let Err(report) = crate::disk::check_ext2(&disk)? {
            return Err(format!("pjdfstest on libos {arch} ext2: e2fsck -fn after the run:\n{report}").into());
        }
    }
    Ok((Report::parse(&outcome.console), outcome.console))
}

/// Runs the suite natively (x86_64 hosts) as root in a fresh directory under `target/`, with
/// the `tests` user added to `/etc/passwd` and `/etc/group` inside a mount namespace of its
/// own. Returns the report and the file system type the directory is on.
pub fn run_host(patterns: &[String]) -> Result<(Report, String)> {
    let program = ensure(Arch::X86_64)?;
    std::fs::create_dir_all(target_dir())?;
    let work = tempfile::Builder::new().prefix("host-run-").tempdir_in(target_dir())?;
    let fs_type = crate::linux::output_of(Command::new("findmnt").args(["-n", "-o", "FSTYPE", "-T"]).arg(work.path()))?.trim().to_string();
    let with_tests = |path: &str, line: &str| -> Result<PathBuf> {
        let mut text = std::fs::read_to_string(path)?;
        if !text.lines().any(|l| l.starts_with("tests:")) {
            text.push_str(line);
        }
        let copy = work.path().join(Path::new(path).file_name().ok_or("no file name")?);
        std::fs::write(&copy, text)?;
        Ok(copy)
    };
    let passwd = with_tests("/etc/passwd", "tests:x:1500:1500:pjdfstest second user:/nonexistent:/usr/sbin/nologin\n")?;
    let group = with_tests("/etc/group", "tests:x:1500:\n")?;
    let dir = work.path().join("run");
    std::fs::create_dir(&dir)?;
    let script = "mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/group && shift 2 && exec \"$@\"";
    let output = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .args([&passwd, &group, &program])
        .arg("-c")
        .arg(files_dir().join("pjdfstest.toml"))
        .arg("-p")
        .arg(&dir)
        .args(patterns)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !matches!(output.status.code(), Some(0 | 1)) {
        return Err(format!("pjdfstest on the host: {}\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok((Report::parse(&stdout), fs_type))
}

/// `./x pjdfstest`: runs the suite on the host and on libos for `arches` × `roots`, prints
/// the counts side by side and every case whose outcome differs from the host's, writes the
/// same as `target/pjdfstest/report.md`, and returns 0 when libos shows nothing unexpected.
pub fn compare(arches: &[Arch], roots: &[Root], host: bool, patterns: &[String]) -> Result<i32> {
    let mut table = String::from("| where | passed | failed | skipped | total |\n|---|---|---|---|---|\n");
    let row = |where_: &str, report: &Report| {
        let (passed, failed, skipped) = report.counts();
        format!("| {where_} | {passed} | {failed} | {skipped} | {} |\n", report.cases.len())
    };
    let host_report = if host {
        let (report, fs_type) = run_host(patterns)?;
        table.push_str(&row(&format!("host, Linux {fs_type} (x86_64, native)"), &report));
        Some(report)
    } else {
        None
    };
    let mut details = String::new();
    let mut unexpected_total = 0;
    for &arch in arches {
        for &root in roots {
            eprintln!("==> pjdfstest on libos {arch}, {} root", root.name());
            let (report, _) = run_guest(arch, root, patterns)?;
            let where_ = format!("libos {arch}, {} root", root.name());
            table.push_str(&row(&where_, &report));
            let unexpected = report.unexpected();
            unexpected_total += unexpected.len();
            for (name, outcome) in &unexpected {
                details.push_str(&format!("- **unexpected** on {where_}: `{name}` {outcome:?}\n"));
            }
            if let Some(host_report) = &host_report {
                for (name, ours, theirs) in report.differences(host_report) {
                    details.push_str(&format!("- {where_}: `{name}` {} (host: {})\n", brief(ours), brief(theirs)));
                }
            }
        }
    }
    let mut known = String::new();
    for (name, why) in KNOWN_FAILURES {
        known.push_str(&format!("- `{name}`: {why}\n"));
    }
    let text = format!(
        "# pjdfstest {VERSION} on libos and on the host\n\n{table}\n## Cases whose outcome differs from the host's\n\n{}\n## Known failures on libos\n\n{known}",
        if details.is_empty() { "None.\n".to_string() } else { details }
    );
    print!("{text}");
    std::fs::create_dir_all(target_dir())?;
    std::fs::write(target_dir().join("report.md"), &text)?;
    eprintln!("==> written to {}", target_dir().join("report.md").display());
    Ok(if unexpected_total == 0 { 0 } else { 1 })
}

/// One word for an outcome in the report (with the reason of a skip or failure).
fn brief(outcome: Option<&Outcome>) -> String {
    match outcome {
        None => "not run".into(),
        Some(Outcome::Passed) => "ok".into(),
        Some(Outcome::Failed(why)) => format!("FAILED: {}", why.lines().next().unwrap_or("")),
        Some(Outcome::Skipped(why)) => format!("skipped: {}", why.lines().next().unwrap_or("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\u{1b}[34mchmod::change_perm::regular    \u{1b}[0m \u{1b}[32mok\u{1b}[0m\r\n\
        open::etxtbsy                                   FAILED\n\
        \tcalled `Result::unwrap()` on an `Err` value: NotFound\n\
        link::exdev_target                              skipped\n\
        \tNo secondary file-system has been configured.\n\
        link::odd_skip                                  skipped\n\
        \trequires features: rename_ctime\n\
        rename::surprise                                PASSED UNEXPECTEDLY\n\
        \n\
        Summary: 2 failed, 2 skipped, 1 passed, 0 expected failures, 5 total\n";

    #[test]
    fn parses_every_kind_of_line_with_its_reason() {
        let report = Report::parse(OUTPUT);
        assert_eq!(report.cases.len(), 5);
        assert_eq!(report.cases["chmod::change_perm::regular"], Outcome::Passed);
        assert_eq!(report.cases["open::etxtbsy"], Outcome::Failed("called `Result::unwrap()` on an `Err` value: NotFound".into()));
        assert_eq!(report.cases["link::exdev_target"], Outcome::Skipped("No secondary file-system has been configured.".into()));
        assert_eq!(report.cases["rename::surprise"], Outcome::Failed(String::new()));
        assert_eq!(report.counts(), (1, 2, 2));
    }

    #[test]
    fn only_unknown_failures_and_unexpected_skips_are_unexpected() {
        let unexpected: Vec<String> = Report::parse(OUTPUT).unexpected().into_iter().map(|(n, _)| n).collect();
        assert_eq!(unexpected, ["link::odd_skip", "rename::surprise"]);
    }

    #[test]
    fn differences_compare_the_kind_of_outcome_not_the_message() {
        let ours = Report::parse("a::b  FAILED\n\tone\nc::d  ok\ne::f  ok\n");
        let theirs = Report::parse("a::b  FAILED\n\tanother\nc::d  skipped\n\twhy\ng::h  ok\n");
        let names: Vec<&str> = ours.differences(&theirs).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["c::d", "e::f", "g::h"]);
    }
}
