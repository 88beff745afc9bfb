//! How each server is built: a [`Recipe`] is a list of [`Step`]s run in a fresh copy of the
//! Debian source tree, and the path of the program they produce.
//!
//! The recipes keep to the projects' own build systems and switch off what a libos guest
//! cannot use or does not need, rather than patching sources:
//!
//! - **redis**: its Makefile, `MALLOC=libc` (no jemalloc), `USE_SYSTEMD=no`, `BUILD_TLS=no`,
//!   linked `-static` (through `REDIS_LDFLAGS`, which leaves the Makefile's own flags alone).
//!   The bundled `deps/` (lua, hiredis, hdr_histogram) are built with the same compiler.
//!   `uname_S`/`uname_M` name the *target* (the Makefile asks `uname`, which names the host).
//! - **lighttpd**: autotools, as Debian builds it, with `LIGHTTPD_STATIC=yes` (every module
//!   linked into the one program, listed in `src/plugin-static.h`, which the static build
//!   expects us to write), `LDFLAGS=-all-static` at link time (libtool's spelling of a fully
//!   static program; configure itself cannot take it) and no optional library (no PCRE, zlib,
//!   TLS, Lua...). Always configured as a cross build (`--host`, `--build`), also for x86_64,
//!   so both architectures detect features the same way, without running test programs. musl
//!   has no `<sys/queue.h>` (lighttpd's HPACK code uses its list macros): the build gets a
//!   `compat/` include directory with a link to glibc's copy, which is only macros.
//!
//! No Debian hardening flags (`dpkg-buildflags`): the guest is one address space, and the
//! programs keep the projects' own optimisation and debug flags (`-O2 -g`). The cached
//! program is stripped; the unstripped one sits beside it for symbols.
//!
//! A recipe's text (its steps, `{:#?}`) is stored beside the program it built: a changed
//! recipe rebuilds, an unchanged one is reused.

use super::debian::{QUEUE_H, binutils};
use crate::Result;
use crate::arch::Arch;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

/// `make`'s parallelism: the build machine has two cores, shared.
const JOBS: &str = "-j2";

/// Part of every recipe's text: bump it when [`Recipe::run`] changes what every step sees
/// (its environment), so programs built before are rebuilt.
const RUNNER_REVISION: u32 = 2;

/// One step of a build, run in the build directory.
#[derive(Debug)]
pub enum Step {
    /// Writes a file (path relative to the build directory) with these contents.
    Write(&'static str, String),
    /// Makes a symbolic link (relative path) to an absolute target.
    Symlink(&'static str, &'static str),
    /// Runs `program` with `args` and extra `env`; `{build}` in an argument stands for the
    /// build directory's absolute path (so the recipe text does not depend on the checkout's).
    Run {
        /// The program (found on `PATH`, or relative to the build directory).
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables added to its environment.
        env: Vec<(&'static str, &'static str)>,
    },
}

/// How to build one server for one architecture.
#[derive(Debug)]
pub struct Recipe {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The program they produce, relative to the build directory.
    pub product: &'static str,
}

impl Recipe {
    /// The recipe's text, stored beside what it built.
    pub fn fingerprint(&self) -> String {
        format!("runner revision {RUNNER_REVISION}\n{self:#?}\n")
    }

    /// Runs every step in `build`, appending the programs' output to `log`. A failed step
    /// fails with its command and the end of the log.
    ///
    /// Every program sees the tree as Debian's build would: `SOURCE_DATE_EPOCH` is the date of
    /// the top entry of `debian/changelog` (redis's build id uses it), and there is no git
    /// repository (`GIT_DIR` names none: a build directory inside a git checkout would have
    /// redis's and lighttpd's version stamps record its commit).
    pub fn run(&self, build: &Path, log_path: &Path) -> Result<()> {
        let log = File::create(log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let changelog = Command::new("dpkg-parsechangelog")
            .args(["-l", "debian/changelog", "-S", "Timestamp"])
            .current_dir(build)
            .output()
            .map_err(|e| format!("cannot run dpkg-parsechangelog: {e}"))?;
        let epoch = String::from_utf8_lossy(&changelog.stdout).trim().to_string();
        if !changelog.status.success() || epoch.is_empty() {
            return Err(format!("no date in {}/debian/changelog", build.display()).into());
        }
        for step in &self.steps {
            match step {
                Step::Write(path, contents) => std::fs::write(build.join(path), contents)?,
                Step::Symlink(path, target) => {
                    let link = build.join(path);
                    if let Some(parent) = link.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::os::unix::fs::symlink(target, &link)?;
                }
                Step::Run { program, args, env } => {
                    let build_str = build.to_str().ok_or("the build directory's path is not UTF-8")?;
                    let args: Vec<String> = args.iter().map(|a| a.replace("{build}", build_str)).collect();
                    let status = Command::new(program)
                        .args(&args)
                        .env("SOURCE_DATE_EPOCH", &epoch)
                        .env("GIT_DIR", "/nonexistent")
                        .envs(env.iter().copied())
                        .current_dir(build)
                        .stdin(Stdio::null())
                        .stdout(log.try_clone()?)
                        .stderr(log.try_clone()?)
                        .status()
                        .map_err(|e| format!("cannot run {program}: {e}"))?;
                    if !status.success() {
                        let text = std::fs::read_to_string(log_path).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(25).collect::<Vec<_>>().into_iter().rev().collect();
                        return Err(format!(
                            "`{program} {}` failed ({status}) in {}; the end of {}:\n{}",
                            args.join(" "),
                            build.display(),
                            log_path.display(),
                            tail.join("\n")
                        )
                        .into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The static musl C compiler for `arch`.
pub(crate) fn musl_cc(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "musl-gcc",
        Arch::Aarch64 => "aarch64-linux-musl-gcc",
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// redis-server: see the module overview.
pub fn redis(arch: Arch) -> Recipe {
    let mut args = strings(&[JOBS, "V=1", "MALLOC=libc", "USE_SYSTEMD=no", "BUILD_TLS=no", "REDIS_LDFLAGS=-static", "uname_S=Linux"]);
    args.push(format!("uname_M={}", arch.name()));
    args.push(format!("CC={}", musl_cc(arch)));
    args.push(format!("AR={}", binutils(arch, "ar")));
    args.push(format!("RANLIB={}", binutils(arch, "ranlib")));
    // The top-level Makefile hands unknown targets to src/, which builds deps/ first.
    args.push("redis-server".into());
    Recipe { steps: vec![Step::Run { program: "make".into(), args, env: Vec::new() }], product: "src/redis-server" }
}

/// The modules `src/Makefile.am` compiles into a static lighttpd (`if LIGHTTPD_STATIC`), each
/// registered in `src/plugin-static.h`; `server.modules` in the configuration picks among them
/// at run time. (A name that is not compiled in fails the link, so the list cannot drift.)
pub const LIGHTTPD_MODULES: &[&str] = &[
    "access",
    "accesslog",
    "ajp13",
    "alias",
    "auth",
    "authn_file",
    "cgi",
    "deflate",
    "dirlisting",
    "evhost",
    "expire",
    "extforward",
    "fastcgi",
    "indexfile",
    "proxy",
    "redirect",
    "rewrite",
    "rrdtool",
    "scgi",
    "setenv",
    "simple_vhost",
    "sockproxy",
    "ssi",
    "staticfile",
    "status",
    "userdir",
    "vhostdb",
    "webdav",
];

/// lighttpd: see the module overview.
pub fn lighttpd(arch: Arch) -> Recipe {
    let plugins: String = LIGHTTPD_MODULES.iter().map(|m| format!("PLUGIN_INIT(mod_{m})\n")).collect();
    let host = format!("--host={}-linux-musl", arch.name());
    let build = format!("--build={}-linux-gnu", Arch::host().name());
    let mut configure = vec![host, build, format!("CC={}", musl_cc(arch)), "CC_FOR_BUILD=gcc".into()];
    configure.push(format!("AR={}", binutils(arch, "ar")));
    configure.push(format!("RANLIB={}", binutils(arch, "ranlib")));
    configure.extend(strings(&[
        "--disable-shared",
        "--enable-static",
        "--disable-dependency-tracking",
        "--without-pcre2",
        "--without-pcre",
        "--without-zlib",
        "--without-zstd",
        "--without-bzip2",
        "--without-brotli",
        "--without-libdeflate",
        "--without-openssl",
        "--without-lua",
    ]));
    let make = strings(&[JOBS, "-C", "src", "all", "V=1", "CPPFLAGS=-isystem {build}/compat", "LDFLAGS=-all-static"]);
    Recipe {
        steps: vec![
            Step::Write("src/plugin-static.h", plugins),
            Step::Symlink("compat/sys/queue.h", QUEUE_H),
            Step::Run { program: "./configure".into(), args: configure, env: vec![("LIGHTTPD_STATIC", "yes")] },
            Step::Run { program: "make".into(), args: make, env: Vec::new() },
        ],
        product: "src/lighttpd",
    }
}
