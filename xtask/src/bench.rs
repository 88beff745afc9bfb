//! `./x bench`: benchmark suites. Each writes `bench/results/<suite>.json` (machine-readable)
//! and `bench/results/<suite>.md` (the table a person reads).
//!
//! Headline figures are deterministic guest instruction counts (QEMU `-icount shift=0`);
//! wall-clock figures are medians of repeated runs taken in the same invocation as their
//! baseline, always labelled with the accelerator.

mod block;
mod boot;
mod boot_aarch64;
mod fs;
mod fs_compare;
mod sched;
mod shim;
mod virtiofs;
mod virtiofs_dax;
mod icmp;
mod linux;
mod net;
mod net_scale;
mod net_tcp;
mod process;
mod readme;
mod servers;
mod smp;

use crate::{Result, root};
use std::path::PathBuf;
use std::time::Duration;

/// Runs `./x bench ARGS`: `SUITE [OPTIONS]`, `all`, `--compare`, or `SUITE --compare`.
pub fn main(args: Vec<String>) -> Result<i32> {
    let compare = args.iter().any(|a| a == "--compare");
    let mut args = args.into_iter().filter(|a| a != "--compare");
    let suite = args.next();
    if compare {
        return crate::measure::compare_main(suite.as_deref());
    }
    match suite.as_deref() {
        Some("boot") => boot::run(args.collect()),
        Some("fs") => fs::run(args.collect()),
        Some("sched") => sched::run(args.collect()),
        Some("shim") => shim::run(args.collect()),
        Some("smp") => smp::run(args.collect()),
        Some("process") => process::run(args.collect()),
        Some("linux") => linux::run(args.collect()),
        Some("block") => block::run(args.collect()),
        Some("virtiofs") => virtiofs::run(args.collect()),
        Some("net") => net::run(args.collect()),
        Some("servers") => servers::run(args.collect()),
        Some("all") => all(args.collect()),
        Some("readme") => readme::write(None).map(|()| 0),
        Some(other) => Err(format!("unknown benchmark suite `{other}` (suites: boot, fs, sched, shim, smp, process, linux, block, virtiofs, net, servers, all; readme rewrites README.md)").into()),
        None => Err("which suite? ./x bench boot | fs | sched | shim | smp | process | linux | block | virtiofs | net | servers | all | --compare".into()),
    }
}

/// `./x bench all`: every suite, then `bench/results/README.md`. A failed suite does not stop
/// the others; it is reported, and the whole run fails.
fn all(args: Vec<String>) -> Result<i32> {
    if let Some(bad) = args.first() {
        return Err(format!("`./x bench all` takes no options (got `{bad}`)").into());
    }
    let started = std::time::Instant::now();
    let mut status = 0;
    type Suite = fn(Vec<String>) -> Result<i32>;
    let suites: [(&str, Suite); 12] = [
        ("boot", boot::run),
        ("fs", fs::run),
        ("sched", sched::run),
        ("shim", shim::run),
        ("smp", smp::run),
        ("process", process::run),
        ("virtiofs", virtiofs::run),
        ("virtiofs --dax", virtiofs_dax::run),
        ("linux", linux::run),
        ("block", block::run),
        ("net", net::run),
        ("servers", servers::run),
    ];
    for (suite, run) in suites {
        match run(Vec::new()) {
            Ok(0) => {}
            Ok(code) => {
                eprintln!("./x: suite {suite} finished with failures (status {code})");
                status = 1;
            }
            Err(e) => {
                eprintln!("./x: suite {suite} failed: {e}");
                status = 1;
            }
        }
    }
    readme::write(Some(started.elapsed()))?;
    Ok(status)
}

/// `bench/results/`, created if needed.
pub fn results_dir() -> Result<PathBuf> {
    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Median, minimum and maximum of some durations, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Spread {
    /// The spread of `samples` (at least one).
    pub fn of(samples: &[Duration]) -> Spread {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 { ms[n / 2] } else { (ms[n / 2 - 1] + ms[n / 2]) / 2.0 };
        Spread { median, min: ms[0], max: ms[n - 1] }
    }

    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "median_ms": round(self.median), "min_ms": round(self.min), "max_ms": round(self.max) })
    }
}

/// Rounds to 0.01.
pub fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Facts about the machine the numbers come from.
pub fn host_facts() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let qemu = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    serde_json::json!({ "cpu": cpu, "cores": cores, "qemu": qemu, "commit": commit })
}
