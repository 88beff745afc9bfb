//! `./x fuzz`: the libFuzzer targets of `fuzz/` (see its crate docs), built and run without the
//! cargo-fuzz binary.
//!
//! cargo-fuzz is a thin driver around two things we can do ourselves: build with the
//! sanitizer-coverage passes, and link `libfuzzer-sys` (which compiles libFuzzer's C++ sources
//! with the host's C++ compiler). Doing it here saves CI a `cargo install` of cargo-fuzz on first
//! use (its build takes longer than the targets'), and works with Debian's rustc: the coverage
//! flags are `-C passes`/`-C llvm-args` options of stable rustc, and `RUSTC_BOOTSTRAP` (which `./x`
//! sets anyway) is all the nightly-ness needed. No AddressSanitizer: the code under test is safe
//! Rust (or, for posix-shim's bookkeeping, its pure part), so memory errors show up as panics
//! without it, and ASan needs a sanitizer runtime from a nightly rustc we do not have.
//!
//! Builds go to `target/fuzz/` with overflow checks and debug assertions on (an overflow in
//! table arithmetic is a bug to find, not a wrap to ignore). A run reads the kept corpus
//! `fuzz/corpus/TARGET/` and writes what it finds to `target/fuzz/corpus/TARGET/` (the smoke runs
//! of `./x test`: to a fresh temporary directory); a crashing input lands in
//! `target/fuzz/artifacts/TARGET/`, and `./x` says how to turn it into a regression input.

use crate::{Result, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The sanitizer-coverage instrumentation cargo-fuzz uses (edge coverage with inline 8-bit
/// counters, the PC table for `cov:` figures, and comparison tracing so checksums, magic
/// numbers and lengths are solved), plus the `fuzzing` cfg libfuzzer-sys expects.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

/// The fuzz profile, defined on the command line so the workspace's release profile (LTO, one
/// codegen unit, size-optimized: right for images, slow to build for fuzzing) stays as it is.
const PROFILE: &[&str] = &[
    "profile.fuzz.inherits=\"release\"",
    "profile.fuzz.opt-level=3",
    "profile.fuzz.lto=false",
    "profile.fuzz.codegen-units=16",
    "profile.fuzz.debug-assertions=true",
    "profile.fuzz.overflow-checks=true",
    "profile.fuzz.debug=\"line-tables-only\"",
];

/// Seconds per target of the smoke run inside `./x test`.
pub const SMOKE_SECONDS: u32 = 4;

/// What one run measured (from libFuzzer's final status line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Inputs executed.
    pub runs: u64,
    /// Covered edges (libFuzzer's `cov:`).
    pub cov: u64,
    /// Executions per second.
    pub exec_per_s: u64,
    /// Inputs in the corpus at the end (`corp:`).
    pub corpus: u64,
}

/// The targets: one per file in `fuzz/fuzz_targets/`, sorted.
pub fn targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok()?.strip_suffix(".rs").map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// The host's target triple: the targets are built for it explicitly, so that RUSTFLAGS
/// (the coverage passes) reach the targets but not build scripts and proc macros.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").ok().filter(|r| !r.is_empty()).unwrap_or_else(|| "/usr/bin/rustc".into());
    let out = Command::new(&rustc).arg("-vV").output().map_err(|e| format!("{rustc} -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(String::from))
        .ok_or_else(|| format!("{rustc} -vV does not name the host triple").into())
}

/// Installs what building libFuzzer needs (a C++ compiler), once.
pub fn ensure_tools() -> Result<()> {
    crate::linux::ensure_packages(&[], &[("c++", "g++")])
}

/// Builds every target; returns the folder holding the binaries.
pub fn build() -> Result<PathBuf> {
    ensure_tools()?;
    let triple = host_triple()?;
    eprintln!("==> building the fuzz targets (sanitizer coverage, target/fuzz)");
    let mut command = Command::new(crate::build::cargo());
    command.current_dir(root()).args(["build", "--quiet", "-p", "libos-fuzz", "--features", "libfuzzer", "--bins"]);
    command.args(["--target", &triple, "--target-dir", "target/fuzz", "--profile", "fuzz"]);
    for setting in PROFILE {
        command.args(["--config", setting]);
    }
    command.env("RUSTFLAGS", RUSTFLAGS).env("RUSTC_BOOTSTRAP", "1");
    let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the fuzz targets failed".into());
    }
    Ok(root().join("target/fuzz").join(triple).join("fuzz"))
}

/// Runs `target` (built in `bin_dir`) for `seconds`, new inputs going to `work_corpus`.
/// `Err` when it found a crash (with the input's path and what to do with it).
pub fn run(bin_dir: &Path, target: &str, seconds: u32, work_corpus: &Path) -> Result<Stats> {
    let kept = root().join("fuzz/corpus").join(target);
    let artifacts = root().join("target/fuzz/artifacts").join(target);
    std::fs::create_dir_all(work_corpus).map_err(|e| format!("{}: {e}", work_corpus.display()))?;
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    let binary = bin_dir.join(target);
    let output = Command::new(&binary)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .arg("-max_len=16384")
        .arg(work_corpus)
        .arg(&kept)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let artifact = log.lines().find_map(|l| l.split("Test unit written to ").nth(1)).unwrap_or("(none written)");
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "fuzz target `{target}` failed ({}):\n{}\n\ncrashing input: {artifact}\n\
             reproduce: {} {artifact}\n\
             keep it as a regression input (replayed by `cargo test -p libos-fuzz`): \
             cp {artifact} fuzz/corpus/{target}/",
            output.status,
            tail.join("\n"),
            binary.display(),
        )
        .into());
    }
    Ok(parse_stats(&log))
}

/// The figures of libFuzzer's last status line (`#N DONE cov: C ft: F corp: K/S ... exec/s: E`)
/// and its final `stat::` lines.
pub fn parse_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    let field = |line: &str, name: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == name)?;
        words.next()?.split('/').next()?.parse().ok()
    };
    if let Some(line) = log.lines().rev().find(|l| l.starts_with('#') && l.contains(" cov: ")) {
        stats.runs = line[1..].split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        stats.cov = field(line, "cov:").unwrap_or(0);
        stats.corpus = field(line, "corp:").unwrap_or(0);
        stats.exec_per_s = field(line, "exec/s:").unwrap_or(0);
    }
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            stats.runs = n.trim().parse().unwrap_or(stats.runs);
        }
        if let Some(n) = line.strip_prefix("stat::average_exec_per_sec:") {
            stats.exec_per_s = n.trim().parse().unwrap_or(stats.exec_per_s);
        }
    }
    stats
}

/// `./x fuzz [TARGET] [--time S]`.
pub fn main(args: Vec<String>) -> Result<i32> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut only = None;
    let mut seconds = 60u32;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("time") => seconds = parser.value()?.parse()?,
            Value(value) if only.is_none() => only = Some(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let all = targets()?;
    let chosen: Vec<String> = match only {
        Some(name) if all.contains(&name) => vec![name],
        Some(name) => return Err(format!("unknown fuzz target `{name}` (targets: {})", all.join(", ")).into()),
        None => all,
    };
    let bin_dir = build()?;
    for target in &chosen {
        eprintln!("==> fuzzing {target} for {seconds} s");
        let stats = run(&bin_dir, target, seconds, &root().join("target/fuzz/corpus").join(target))?;
        report(target, seconds, &stats);
    }
    Ok(0)
}

fn report(target: &str, seconds: u32, stats: &Stats) {
    eprintln!(
        "==> fuzz {target}: {seconds} s, {} runs, {} exec/s, cov {}, corpus {}, no crash",
        stats.runs, stats.exec_per_s, stats.cov, stats.corpus
    );
}

/// The smoke run of `./x test`: every target for [`SMOKE_SECONDS`] from the kept corpus, new
/// inputs into a temporary directory. `Ok(false)` when a target crashed (already reported).
pub fn smoke() -> Result<bool> {
    let bin_dir = build()?;
    let work = tempfile::Builder::new().prefix("libos-fuzz-").tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let mut ok = true;
    for target in targets()? {
        match run(&bin_dir, &target, SMOKE_SECONDS, &work.path().join(&target)) {
            Ok(stats) => report(&target, SMOKE_SECONDS, &stats),
            Err(e) => {
                eprintln!("./x: {e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_status_line_and_stats_are_read() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #81234\tDONE   cov: 345 ft: 900 corp: 40/2Kb lim: 4096 exec/s: 4061 rss: 60Mb\n\
                   stat::number_of_executed_units: 81240\nstat::average_exec_per_sec:     4062\n";
        assert_eq!(parse_stats(log), Stats { runs: 81240, cov: 345, exec_per_s: 4062, corpus: 40 });
        assert_eq!(parse_stats("nothing"), Stats::default());
    }
}
