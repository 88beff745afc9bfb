//! Debian's side of the server builds: the `deb-src` index, the source packages, the build
//! tools.
//!
//! A server is built from its Debian source package exactly as `dpkg-source -x` unpacks it:
//! the upstream tarball with Debian's patches applied (its security fixes among them). The
//! package files come from `apt-get source --download-only PACKAGE=VERSION`, so apt checks
//! them against the signed `Sources` index of the archive this machine already uses.
//!
//! This machine's apt has no `deb-src` entries by default. [`ensure_deb_src`] adds
//! `/etc/apt/sources.list.d/libos-deb-src.sources`: every `deb` stanza of
//! `/etc/apt/sources.list.d/debian.sources` again with `Types: deb-src` (same URIs, suites,
//! keyring; no mirror is named here), the way `xtask/setup.sh` adds bookworm-backports.
//! [`ensure_backports_deb_src`] does the same for bookworm-backports (the source of the DAX
//! QEMU, [`crate::dax_qemu`]).

use crate::Result;
use crate::arch::Arch;
use crate::linux::{apt_install, have_command, run_step};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The deb822 file apt reads the archive's locations from on this machine.
const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";

/// The deb822 file [`ensure_deb_src`] writes.
const DEB_SRC_LIST: &str = "/etc/apt/sources.list.d/libos-deb-src.sources";

/// The deb822 file [`ensure_backports_deb_src`] writes.
const BACKPORTS_DEB_SRC_LIST: &str = "/etc/apt/sources.list.d/libos-backports-deb-src.sources";

/// The suite `xtask/setup.sh` adds for QEMU 10.
const BACKPORTS: &str = "bookworm-backports";

/// The `deb-src` twin of a deb822 sources file: each stanza whose `Types` include `deb`, with
/// `Types: deb-src` and without comments. Empty when no stanza serves binary packages.
pub fn deb_src_stanzas(sources: &str) -> String {
    let mut out = Vec::new();
    for stanza in sources.split("\n\n") {
        let lines: Vec<&str> = stanza.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
        let serves_deb = lines
            .iter()
            .filter_map(|l| l.strip_prefix("Types:"))
            .any(|types| types.split_whitespace().any(|t| t == "deb"));
        if !serves_deb {
            continue;
        }
        let rewritten: Vec<String> =
            lines.iter().map(|l| if l.starts_with("Types:") { "Types: deb-src".to_string() } else { l.to_string() }).collect();
        out.push(rewritten.join("\n"));
    }
    if out.is_empty() { String::new() } else { out.join("\n\n") + "\n" }
}

/// True when some apt source already serves source packages (a `deb-src` line or stanza).
fn has_deb_src() -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| {
            p.extension().is_some_and(|x| x == "list" || x == "sources")
        }));
    }
    files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).any(|text| {
        text.lines().map(str::trim).any(|l| l.starts_with("deb-src ") || (l.starts_with("Types:") && l.contains("deb-src")))
    })
}

/// Adds the `deb-src` twin of the archive's sources and refreshes apt's lists, when no source
/// serves source packages yet.
pub fn ensure_deb_src() -> Result<()> {
    if has_deb_src() {
        return Ok(());
    }
    let sources = std::fs::read_to_string(DEBIAN_SOURCES).map_err(|e| format!("cannot add deb-src: {DEBIAN_SOURCES}: {e}"))?;
    let stanzas = deb_src_stanzas(&sources);
    if stanzas.is_empty() {
        return Err(format!("cannot add deb-src: no `Types: deb` stanza in {DEBIAN_SOURCES}").into());
    }
    eprintln!("==> first use: adding deb-src entries for Debian's source packages ({DEB_SRC_LIST})");
    std::fs::write(DEB_SRC_LIST, stanzas).map_err(|e| format!("cannot write {DEB_SRC_LIST} (root needed): {e}"))?;
    apt_install(&[])
}

/// The stanzas of a deb822 sources file whose `Suites` include bookworm-backports.
pub fn backports_stanzas(sources: &str) -> String {
    let serves = |stanza: &&str| {
        stanza.lines().filter_map(|l| l.strip_prefix("Suites:")).any(|suites| suites.split_whitespace().any(|s| s == BACKPORTS))
    };
    sources.split("\n\n").filter(serves).collect::<Vec<_>>().join("\n\n")
}

/// Adds the `deb-src` twin of the bookworm-backports stanzas (which `xtask/setup.sh` adds
/// for QEMU 10) beside [`ensure_deb_src`]'s, when no source serves backports' source packages
/// yet, and refreshes apt's lists: the DAX QEMU is built from backports' QEMU source.
pub fn ensure_backports_deb_src() -> Result<()> {
    ensure_deb_src()?;
    let mut backports = String::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for path in dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sources")) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for stanza in backports_stanzas(&text).split("\n\n") {
                let types = stanza.lines().filter_map(|l| l.strip_prefix("Types:")).collect::<Vec<_>>().join(" ");
                if types.split_whitespace().any(|t| t == "deb-src") {
                    return Ok(());
                }
                backports.push_str(stanza);
                backports.push_str("\n\n");
            }
        }
    }
    let stanzas = deb_src_stanzas(&backports);
    if stanzas.is_empty() {
        return Err(format!("cannot add deb-src for {BACKPORTS}: no deb822 stanza in /etc/apt/sources.list.d serves it (./x adds one)").into());
    }
    eprintln!("==> first use: adding deb-src entries for {BACKPORTS} ({BACKPORTS_DEB_SRC_LIST})");
    std::fs::write(BACKPORTS_DEB_SRC_LIST, stanzas).map_err(|e| format!("cannot write {BACKPORTS_DEB_SRC_LIST} (root needed): {e}"))?;
    apt_install(&[])
}

/// Installs what the server builds run, when missing: the musl toolchain of `arch`, `make`,
/// `gcc` (lighttpd's parser generator runs on the build machine), `dpkg-source` and `xz`
/// (unpacking), binutils of `arch` (`ar`, `ranlib`, `strip`) and glibc's headers (lighttpd
/// borrows `<sys/queue.h>`, pure macros that musl lacks).
pub fn ensure_build_tools(arch: Arch) -> Result<()> {
    crate::linux::ensure_musl(&[arch])?;
    let mut packages: Vec<&str> = [("make", "make"), ("gcc", "gcc"), ("dpkg-source", "dpkg-dev"), ("xz", "xz-utils")]
        .into_iter()
        .filter(|(command, _)| !have_command(command))
        .map(|(_, package)| package)
        .collect();
    if !Path::new(QUEUE_H).is_file() {
        packages.push("libc6-dev");
    }
    if !have_command(&binutils(arch, "strip")) {
        packages.push(if arch == Arch::X86_64 { "binutils" } else { "binutils-aarch64-linux-gnu" });
    }
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("==> first use: installing the server build tools: {}", packages.join(" "));
    apt_install(&packages)
}

/// glibc's `<sys/queue.h>` (see [`ensure_build_tools`]).
pub const QUEUE_H: &str = "/usr/include/x86_64-linux-gnu/sys/queue.h";

/// A binutils program for `arch` (`ar`, `ranlib`, `strip`).
pub fn binutils(arch: Arch, tool: &str) -> String {
    match arch {
        Arch::X86_64 => tool.to_string(),
        Arch::Aarch64 => format!("aarch64-linux-gnu-{tool}"),
    }
}

/// Installs the host packages that provide `commands`, given as (command, package) pairs,
/// when a command is missing (the servers' own client and benchmark tools).
pub fn ensure_commands(commands: &[(&str, &'static str)]) -> Result<()> {
    let mut packages: Vec<&str> = commands.iter().filter(|(c, _)| !have_command(c)).map(|(_, p)| *p).collect();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("==> first use: installing {}", packages.join(" "));
    apt_install(&packages)
}

/// A Debian version without its epoch (`5:7.0.15-1~deb12u10` -> `7.0.15-1~deb12u10`): what
/// the package's file names carry.
pub fn without_epoch(version: &str) -> &str {
    version.split_once(':').map_or(version, |(_, rest)| rest)
}

/// Downloads source package `package` at `version` into `dir/download` and unpacks it with
/// Debian's patches into `dir/tree`, once (a stamp file marks a complete unpack). Returns the
/// tree.
pub fn fetch_source(package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let tree = dir.join("tree");
    let stamp = dir.join("tree.unpacked");
    if stamp.is_file() {
        return Ok(tree);
    }
    ensure_deb_src()?;
    let download = dir.join("download");
    std::fs::create_dir_all(&download)?;
    // apt downloads as its sandbox user `_apt`, which cannot write into root's tree.
    run_step(Command::new("chmod").arg("0777").arg(&download))?;
    let spec = format!("{package}={version}");
    let fetch = || run_step(Command::new("apt-get").args(["source", "--download-only", "-q", &spec]).current_dir(&download));
    if fetch().is_err() {
        // The lists may predate the deb-src entries (or this version): refresh once.
        apt_install(&[])?;
        fetch().map_err(|e| format!("{e}\n(is {package} {version} still in the archive? then update servers.rs)"))?;
    }
    let dsc = download.join(format!("{package}_{}.dsc", without_epoch(version)));
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    // dpkg-source warns that it cannot check the .dsc's signature (no Debian keyring for
    // source uploads here); apt already checked every file against the signed index.
    run_step(Command::new("dpkg-source").args(["--no-copy", "-x"]).arg(&dsc).arg(&tree))?;
    std::fs::write(&stamp, format!("{package} {version}\n"))?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_src_twins_every_binary_stanza_without_comments() {
        let sources = "Types: deb\n# a comment\nURIs: http://example.invalid/debian\nSuites: bookworm bookworm-updates\n\
                       Components: main\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: http://x.invalid\nSuites: s\n\n\
                       Types: deb deb-src\nURIs: http://y.invalid\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(
            deb_src_stanzas(sources),
            "Types: deb-src\nURIs: http://example.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\
             Signed-By: /k.gpg\n\nTypes: deb-src\nURIs: http://y.invalid\nSuites: bookworm-security\nComponents: main\n"
        );
        assert_eq!(deb_src_stanzas("Types: deb-src\nURIs: u\n"), "");
    }

    #[test]
    fn backports_stanzas_are_found_by_suite() {
        let sources = "Types: deb\nURIs: u\nSuites: bookworm bookworm-updates\n\nTypes: deb\nURIs: u\nSuites: bookworm-backports\n";
        assert_eq!(backports_stanzas(sources), "Types: deb\nURIs: u\nSuites: bookworm-backports\n");
        assert_eq!(backports_stanzas("Types: deb\nSuites: bookworm-backportsx\n"), "");
    }

    #[test]
    fn epochs_are_not_in_file_names() {
        assert_eq!(without_epoch("5:7.0.15-1~deb12u10"), "7.0.15-1~deb12u10");
        assert_eq!(without_epoch("1.4.69-1"), "1.4.69-1");
    }
}
