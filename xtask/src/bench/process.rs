//! `./x bench process`: what a process costs when each one is a VM (issue 17). The same static
//! C program (`bench/c/process_ops.c`) runs on libos (`apps/elf-runner` under the process host)
//! and in the Linux guest on the same QEMU:
//!
//! - `fork N`: N rounds of fork + child `_exit(0)` + `waitpid`, the parent's CLOCK_MONOTONIC
//!   around each round (median, min, max);
//! - `pipe MIB`: a child writes MIB MiB into a pipe in 1 MiB writes, the parent reads it with
//!   1 MiB reads; the parent's time from the fork to end of file, and from the first byte.
//!
//! **Wall clock under QEMU TCG** (no icount: a fork waits for the host, which icount's virtual
//! clock would not see), median of interleaved runs. On libos the guest's clock stands still
//! while the host has the VM stopped to copy it, so the host's own timings of every fork are
//! reported beside it: the parent stopped and saved (QEMU's migration to a file), and the
//! request-to-child-running time (save, a new QEMU started, the state loaded).

use super::{host_facts, results_dir, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{self, LinuxGuest, bench_counters, check_run};
use crate::measure::median_min_max;
use crate::qemu::{self, Exit, Outcome, VmConfig};
use crate::{Result, build};
use std::time::Duration;

const FORKS: u32 = 20;
const PIPE_MIB: u32 = 64;
const RUNS: usize = 3;

/// One system's configurations: the fork run and the pipe run.
struct System {
    name: &'static str,
    linux: bool,
    fork: VmConfig,
    pipe: VmConfig,
}

fn libos(arch: Arch) -> Result<System> {
    let program = linux::compile_program("process_ops", arch)?;
    let image = build::elf_runner_with(arch, true, Some(&program), None)?;
    let config = |args: [String; 2]| {
        let mut config = VmConfig::new(arch, image.clone());
        config.accel = Accel::Tcg;
        config.memory = "128M".into();
        config.timeout = Duration::from_secs(600);
        config.processes = Some(4);
        config.cmdline = qemu::kernel_cmdline("", &["/bin/process_ops".into(), args[0].clone(), args[1].clone()]);
        config
    };
    Ok(System { name: "libos", linux: false, fork: config(fork_args()), pipe: config(pipe_args()) })
}

fn linux_guest(arch: Arch) -> Result<System> {
    let guest = LinuxGuest::build(arch)?;
    let config = |args: [String; 2]| {
        let mut config = guest.config("process_ops", &args, &[], "");
        config.accel = Accel::Tcg;
        config.timeout = Duration::from_secs(600);
        config
    };
    Ok(System { name: "Linux", linux: true, fork: config(fork_args()), pipe: config(pipe_args()) })
}

fn fork_args() -> [String; 2] {
    ["fork".into(), FORKS.to_string()]
}

fn pipe_args() -> [String; 2] {
    ["pipe".into(), PIPE_MIB.to_string()]
}

/// The run's `[bench]` counters, after checking it ended well.
fn counters(what: &str, outcome: &Outcome, linux: bool) -> Result<crate::measure::Counters> {
    if linux {
        check_run(what, outcome)?;
    } else if outcome.exit != Exit::Code(0) {
        return Err(crate::measure::failure(what, outcome));
    }
    Ok(bench_counters(&outcome.console))
}

fn counter(counters: &crate::measure::Counters, name: &str, what: &str) -> Result<f64> {
    counters.get(name).map(|&v| v as f64).ok_or_else(|| format!("{what}: no `{name}` line").into())
}

/// Figures of one system on one arch (ms unless said otherwise).
#[derive(Default)]
struct Figures {
    fork_median: Vec<f64>,
    fork_min: Vec<f64>,
    pipe_total: Vec<f64>,
    pipe_streaming: Vec<f64>,
    /// libos: the host's save and child-running times of every fork.
    host_saved: Vec<f64>,
    host_running: Vec<f64>,
}

fn measure(arch: Arch, systems: &[System]) -> Result<Vec<Figures>> {
    let mut figures: Vec<Figures> = systems.iter().map(|_| Figures::default()).collect();
    for run in 0..RUNS {
        for (system, figures) in systems.iter().zip(&mut figures) {
            eprintln!("==> bench process {arch}: {} run {}/{RUNS}", system.name, run + 1);
            let what = format!("{} fork on {arch}", system.name);
            let outcome = qemu::run(&system.fork, false)?;
            let fork = counters(&what, &outcome, system.linux)?;
            figures.fork_median.push(counter(&fork, "fork-wait-ns-median", &what)? / 1e6);
            figures.fork_min.push(counter(&fork, "fork-wait-ns-min", &what)? / 1e6);
            for timing in &outcome.forks {
                figures.host_saved.push(timing.saved.as_secs_f64() * 1e3);
                figures.host_running.push(timing.running.as_secs_f64() * 1e3);
            }
            let what = format!("{} pipe on {arch}", system.name);
            let outcome = qemu::run(&system.pipe, false)?;
            let pipe = counters(&what, &outcome, system.linux)?;
            figures.pipe_total.push(counter(&pipe, "pipe-ns", &what)? / 1e6);
            figures.pipe_streaming.push(counter(&pipe, "pipe-ns-after-first-byte", &what)? / 1e6);
        }
    }
    Ok(figures)
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { median_min_max(values.to_vec()).0 }
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let mut with_linux = true;
    for arg in &args {
        match arg.as_str() {
            "--no-linux" => with_linux = false,
            other => return Err(format!("unknown option `{other}` for bench process (expected --no-linux)").into()),
        }
    }
    let mut rows = Vec::new();
    for arch in Arch::ALL.into_iter().filter(|a| a.is_supported()) {
        let mut systems = vec![libos(arch)?];
        if with_linux {
            systems.push(linux_guest(arch)?);
        }
        for (system, figures) in systems.iter().zip(measure(arch, &systems)?) {
            rows.push((arch, system.name, figures));
        }
    }
    let mib_per_s = |ms: f64| f64::from(PIPE_MIB) / (ms / 1e3);
    let json = serde_json::json!({
        "suite": "process",
        "host": host_facts(),
        "method": format!("bench/c/process_ops.c: fork {FORKS} (fork + _exit(0) + waitpid, the parent's CLOCK_MONOTONIC per round) and pipe {PIPE_MIB} (1 MiB writes by a child, 1 MiB reads by the parent); QEMU TCG without icount; median of {RUNS} interleaved runs; libos: apps/elf-runner under the process host (microvm / virt-gicv3, 128 MiB), Linux: the baseline guest (q35 / virt-gicv3, 256 MiB); host_* figures: the process host's own clock per fork"),
        "results": rows.iter().map(|(arch, system, f)| serde_json::json!({
            "arch": arch.to_string(), "system": system,
            "fork_wait_ms_median": round(median(&f.fork_median)), "fork_wait_ms_min": round(median(&f.fork_min)),
            "pipe_ms": round(median(&f.pipe_total)), "pipe_ms_after_first_byte": round(median(&f.pipe_streaming)),
            "pipe_mib_per_s": round(mib_per_s(median(&f.pipe_streaming))),
            "host_fork_saved_ms_median": if f.host_saved.is_empty() { serde_json::Value::Null } else { round(median(&f.host_saved)).into() },
            "host_fork_child_running_ms_median": if f.host_running.is_empty() { serde_json::Value::Null } else { round(median(&f.host_running)).into() },
        })).collect::<Vec<_>>(),
    });
    let mut md = String::from("# Process benchmark (`./x bench process`)\n\n");
    md += &format!(
        "The same static musl program (`bench/c/process_ops.c`) on libos, where every process is a VM of its own (the \
         process host of `./x`; a fork is a copy of the VM made with QEMU's migration), and in the Linux guest on the same \
         QEMU. **Wall clock under QEMU TCG**, median of {RUNS} interleaved runs. Host: {}.\n\n\
         - *fork + exit + wait*: {FORKS} rounds of `fork`, `_exit(0)` in the child, `waitpid` in the parent, timed by the parent \
         (median round, and the fastest). On libos the guest's clock stands still while the host has the VM stopped, so the host's \
         own timings are beside it: the parent stopped and saved, and the request-to-child-running time (saved, a new QEMU started, \
         the state loaded).\n\
         - *pipe*: a child writes {PIPE_MIB} MiB into a pipe in 1 MiB writes, the parent reads until end of file; on libos the pipe \
         lives on the host, which copies between the two VMs' RAM.\n\n",
        json["host"]["cpu"].as_str().unwrap_or("?")
    );
    md += "| arch | system | fork+exit+wait, ms (fastest) | host: saved, ms | host: child running, ms | pipe, ms (after the first byte) | pipe, MiB/s |\n|---|---|---|---|---|---|---|\n";
    for (arch, system, f) in &rows {
        let host = |v: &[f64]| if v.is_empty() { "-".to_string() } else { format!("{:.1}", median(v)) };
        md += &format!(
            "| {arch} | {system} | {:.2} ({:.2}) | {} | {} | {:.0} ({:.0}) | {:.0} |\n",
            median(&f.fork_median),
            median(&f.fork_min),
            host(&f.host_saved),
            host(&f.host_running),
            median(&f.pipe_total),
            median(&f.pipe_streaming),
            mib_per_s(median(&f.pipe_streaming))
        );
    }
    for arch in Arch::ALL {
        let find = |name: &str| rows.iter().find(|r| r.0 == arch && r.1 == name).map(|r| median(&r.2.fork_median));
        if let (Some(libos), Some(linux)) = (find("libos"), find("Linux")) {
            md += &format!("\n{arch}: a fork + exit + wait costs libos {:.0}x the Linux guest's, in wall time.", libos / linux);
        }
    }
    md += "\n\nNot measured yet: guest instructions and device exits per fork and per MiB of pipe (icount cannot time a VM \
           that waits for the host), and the child's boot-to-resume path (a child does not boot: it resumes from the copy).\n";
    let dir = results_dir()?;
    std::fs::write(dir.join("process.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(dir.join("process.md"), &md)?;
    print!("{md}");
    eprintln!("==> wrote bench/results/process.json and bench/results/process.md");
    Ok(0)
}
