//! pjdfstest, the POSIX file-system test suite, on libos as a new user would run it (issue 18):
//! the suite's Rust rewrite (`pjdfstest` [`VERSION`] from the Rust registry, one process that
//! runs every case itself and reports `ok`, `FAILED` or `skipped` per case), built as an
//! unmodified static Linux program for either architecture, run by elf-runner on a ramfs, a
//! virtio-fs or an ext2 root, and on the host's own file system for comparison
//! (`./x pjdfstest`, `tests/tests/pjdfstest.rs`).
//!
//! - **Build and boot**: [`crate::outside`] ([`TOOL`]; it links libacl for its NFSv4 ACL
//!   cases, which need a feature left off). About 30 s for x86_64 and 80 s for aarch64 on two
//!   idle cores, cached in `/var/cache/libos`.
//! - **Files** (`tests/pjdfstest/`): the configuration and an `/etc/passwd` and `/etc/group`
//!   with the second unprivileged user (`tests`) the suite switches to, packed into the image
//!   beside the program.
//! - **Host run** ([`run_host`]): the same binary and configuration as root on a directory
//!   under `target/`, inside a mount namespace where `/etc/passwd` and `/etc/group` gain the
//!   `tests` user (bind mounts; the host's files are not changed).
//! - **Verdict** ([`Report::unexpected`]): every case passes, except the [`KNOWN_FAILURES`],
//!   and is skipped only for a reason in [`EXPECTED_SKIPS`].

use crate::arch::Arch;
use crate::outside::{self, Root, Tool};
use crate::qemu::Exit;
use crate::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pjdfstest release (its Rust rewrite) on the Rust registry.
pub const VERSION: &str = "0.2.2";

/// pjdfstest as a [`Tool`].
pub const TOOL: Tool = Tool {
    name: "pjdfstest",
    version: VERSION,
    static_libraries: &[[("libacl1-dev", "/usr/lib/x86_64-linux-gnu/libacl.a"), ("libacl1-dev:arm64", "/usr/lib/aarch64-linux-gnu/libacl.a")]],
    extras: guest_programs,
};

/// The programs some cases start, in the guest's `/bin`: busybox's `which`, `mount` and
/// `umount`, and a stand-alone `sleep` (`pjdfstest/sleep.c`: the `ETXTBSY` cases run a copy of
/// `which sleep` under another name, which a busybox applet link would not survive).
fn guest_programs(arch: Arch, dir: &Path) -> Result<()> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(crate::linux::ensure_busybox(arch)?, bin.join("busybox"))?;
    for applet in ["which", "mount", "umount"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    crate::linux::compile_static(&[crate::root().join("xtask/src/pjdfstest/sleep.c")], arch, &bin.join("sleep"))
}

/// Cases that fail on libos, with why: none today. (`open::etxtbsy`, `truncate::etxtbsy` and
/// `rmdir::ebusy` were here until the guest had `which`, `sleep`, `mount` and `umount`
/// ([`guest_programs`]), processes told each other which files they run from, and shared
/// their mount table.)
pub const KNOWN_FAILURES: &[(&str, &str)] = &[];

/// Reasons a case may be skipped, the same on the host: the configuration allows no remount
/// (EROFS cases) and names no second file system (EXDEV cases); glibc's `pathconf` reports
/// no link limit for file systems it does not know (ramfs, FUSE), as on Linux's tmpfs and
/// virtiofs.
pub const EXPECTED_SKIPS: &[&str] = &[
    "Remounts (allow_remount) are not allowed in the configuration file",
    "No secondary file-system has been configured.",
    "Cannot get value for LINK_MAX: filesystem limit is unknown",
];

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

/// The suite's command line in the guest: every case (or those matching `patterns`) in `/tmp`.
fn guest_args(patterns: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["/bin/pjdfstest", "-c", "/pjdfstest.toml", "-p", "/tmp"].map(String::from).to_vec();
    args.extend(patterns.iter().cloned());
    args
}

/// Runs the suite in a libos guest for `arch` on `root` ([`outside::boot`], under the process
/// host, so the cases that start programs get as far as they can), and returns its report and
/// the console.
pub fn run_guest(arch: Arch, root: Root, patterns: &[String]) -> Result<(Report, String)> {
    let outcome = outside::boot(&TOOL, arch, root, &guest_args(patterns))?;
    match outcome.exit {
        // The suite exits 1 when a case failed; anything else is a crash or a hang.
        Exit::Code(0 | 1) => Ok((Report::parse(&outcome.console), outcome.console)),
        _ => Err(format!("pjdfstest on libos {arch} {}: {:?}\n{}", root.name(), outcome.exit, outcome.console).into()),
    }
}

/// Runs the suite natively (x86_64 hosts) as root in a fresh directory under `target/`, with
/// the `tests` user added to `/etc/passwd` and `/etc/group` inside a mount namespace of its
/// own. Returns the report and the file system type the directory is on.
pub fn run_host(patterns: &[String]) -> Result<(Report, String)> {
    let program = outside::ensure(&TOOL, Arch::X86_64)?;
    let target_dir = outside::target_dir(&TOOL);
    std::fs::create_dir_all(&target_dir)?;
    let work = tempfile::Builder::new().prefix("host-run-").tempdir_in(&target_dir)?;
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
        .arg(outside::files_dir(&TOOL).join("pjdfstest.toml"))
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
    if known.is_empty() {
        known.push_str("None.\n");
    }
    let text = format!(
        "# pjdfstest {VERSION} on libos and on the host\n\n{table}\n## Cases whose outcome differs from the host's\n\n{}\n## Known failures on libos\n\n{known}",
        if details.is_empty() { "None.\n".to_string() } else { details }
    );
    print!("{text}");
    let report = outside::target_dir(&TOOL).join("report.md");
    std::fs::create_dir_all(outside::target_dir(&TOOL))?;
    std::fs::write(&report, &text)?;
    eprintln!("==> written to {}", report.display());
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
        assert_eq!(unexpected, ["link::odd_skip", "open::etxtbsy", "rename::surprise"]);
    }

    #[test]
    fn differences_compare_the_kind_of_outcome_not_the_message() {
        let ours = Report::parse("a::b  FAILED\n\tone\nc::d  ok\ne::f  ok\n");
        let theirs = Report::parse("a::b  FAILED\n\tanother\nc::d  skipped\n\twhy\ng::h  ok\n");
        let names: Vec<&str> = ours.differences(&theirs).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["c::d", "e::f", "g::h"]);
    }
}
