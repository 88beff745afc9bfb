//! `./x bench process`: what a process costs when each one is a VM (issue 17). The same static
//! C program (`bench/c/process_ops.c`) runs on libos (`apps/elf-runner` under the process host)
//! and in the Linux guest on the same QEMU:
//!
//! - `fork N`: N rounds of fork + child `_exit(0)` + `waitpid`, the parent's CLOCK_MONOTONIC
//!   around each round (median, min, max);
//! - `pipe MIB`: a child writes MIB MiB into a pipe in 1 MiB writes, the parent reads it with
//!   1 MiB reads; the parent's time from the fork to end of file, and from the first byte.
//!
//! **Wall clock under QEMU TCG**, median of interleaved runs. On libos the guest's clock stands
//! still while the host has the VM stopped to copy it, so the host's own timings of every fork
//! are reported beside it: the parent stopped and saved (QEMU's migration to a file), and the
//! request-to-child-running time (save, a new QEMU started, the state loaded).
//!
//! **Guest instructions** from one more run of each under `-icount shift=0,sleep=off` (every
//! QEMU of a libos run, children too, gets the same options; a child's clock goes on from its
//! parent's): each process reports the busy instructions of its own CPU in its windows (the
//! counter minus the idle time). On libos that is its own VM, so a figure is the sum over the
//! VMs: the parent's per round plus the child's path from its parent's `fork` call back into
//! the program (that path includes the parent's part before the copy, counted twice, and leaves
//! out the child's `_exit`); the reader's plus the writer's per MiB. The Linux guest has one
//! CPU, so the parent's or the reader's window is the whole machine: both processes and the
//! kernel.

use super::{host_facts, results_dir, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{self, LinuxGuest, bench_counters, check_run};
use crate::measure::{DeviceTrace, median_min_max};
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

/// Busy guest instructions in the window `name` of `counters` (its `NAME-ticks` and
/// `NAME-idle-ns` lines; one tick is `1e9 / counter-hz` instructions under icount shift=0).
fn busy_instructions(counters: &crate::measure::Counters, name: &str, what: &str) -> Result<f64> {
    let hz = counter(counters, "counter-hz", what)?;
    let ticks = counter(counters, &format!("{name}-ticks"), what)?;
    let idle = counter(counters, &format!("{name}-idle-ns"), what)?;
    Ok(ticks * 1e9 / hz - idle)
}

/// The median busy instructions of every `fork-child` window on the console (one per round:
/// each child reports its own).
fn child_instructions(console: &str, hz: f64) -> Vec<f64> {
    let values = |suffix: &str| -> Vec<f64> {
        let prefix = format!("[bench] fork-child-{suffix}: ");
        console.lines().filter_map(|l| l.trim().strip_prefix(&prefix)?.trim().parse::<f64>().ok()).collect()
    };
    let (ticks, idle) = (values("ticks"), values("idle-ns"));
    ticks.iter().zip(&idle).map(|(t, i)| t * 1e9 / hz - i).collect()
}

/// Exits (MMIO/PIO accesses and virtio notifications) of a traced window, without the
/// console's: the program's own report lines (a Linux writer prints inside its reader's window)
/// are no cost of the pipe.
fn exits_without_console(window: &crate::measure::Counters) -> u64 {
    let console: u64 = window.iter().filter(|(k, _)| k.starts_with("mmio serial ") || k.starts_with("mmio pl011 ")).map(|(_, v)| v).sum();
    window.get("total exits").copied().unwrap_or(0).saturating_sub(console)
}

/// Guest instructions and exits of one system on one arch (the icount run).
#[derive(Default)]
struct GuestCosts {
    /// The parent's VM (Linux: the machine) per fork + exit + wait round.
    fork_parent: f64,
    /// libos: the child's VM from the parent's `fork` call back into the program (median).
    fork_child: Option<f64>,
    /// The reader's VM (Linux: the machine) per MiB after the first byte.
    pipe_reader: f64,
    /// libos: the writer's VM per MiB.
    pipe_writer: Option<f64>,
    /// Exits per MiB in the reader's and (libos) the writer's windows.
    pipe_exits: f64,
}

impl GuestCosts {
    fn fork_total(&self) -> f64 {
        self.fork_parent + self.fork_child.unwrap_or(0.0)
    }

    fn pipe_total(&self) -> f64 {
        self.pipe_reader + self.pipe_writer.unwrap_or(0.0)
    }
}

/// The icount run of `system`: its fork and pipe configurations with `-icount shift=0,sleep=off`.
fn measure_guest_costs(arch: Arch, system: &System) -> Result<GuestCosts> {
    let icount = |config: &VmConfig| {
        let mut config = config.clone();
        config.icount = true;
        config
    };
    eprintln!("==> bench process {arch}: {} under icount", system.name);
    let what = format!("{} fork on {arch} under icount", system.name);
    let outcome = qemu::run(&icount(&system.fork), false)?;
    let fork = counters(&what, &outcome, system.linux)?;
    let fork_parent = busy_instructions(&fork, "fork-loop", &what)? / f64::from(FORKS);
    let fork_child = if system.linux {
        None
    } else {
        let children = child_instructions(&outcome.console, counter(&fork, "counter-hz", &what)?);
        if children.len() != FORKS as usize {
            return Err(format!("{what}: {} of {FORKS} children reported their fork path", children.len()).into());
        }
        Some(median(&children))
    };
    let what = format!("{} pipe on {arch} under icount", system.name);
    let trace = DeviceTrace::per_process(&crate::root().join("target/bench/process"), &format!("pipe-{arch}-{}", system.name))?;
    let mut config = icount(&system.pipe);
    config.extra_args.extend(trace.qemu_args());
    let outcome = qemu::run(&config, false)?;
    let pipe = counters(&what, &outcome, system.linux)?;
    let mib_read = counter(&pipe, "pipe-reader-bytes", &what)? / f64::from(1u32 << 20);
    let pipe_reader = busy_instructions(&pipe, "pipe-reader", &what)? / mib_read;
    let pipe_writer = if system.linux { None } else { Some(busy_instructions(&pipe, "pipe-writer", &what)? / f64::from(PIPE_MIB)) };
    let windows = trace.windows_of_every_process()?;
    let exits_in = |name: &str| -> Result<u64> {
        let window = windows.iter().find(|(n, _)| n == name).ok_or_else(|| format!("{what}: no traced `{name}` window"))?;
        Ok(exits_without_console(&window.1))
    };
    let reader_exits = exits_in("pipe-reader")? as f64 / mib_read;
    let writer_exits = if system.linux { 0.0 } else { exits_in("pipe-writer")? as f64 / f64::from(PIPE_MIB) };
    Ok(GuestCosts { fork_parent, fork_child, pipe_reader, pipe_writer, pipe_exits: reader_exits + writer_exits })
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
    costs: GuestCosts,
}

fn measure(arch: Arch, systems: &[System], runs: usize) -> Result<Vec<Figures>> {
    let mut figures: Vec<Figures> = systems.iter().map(|_| Figures::default()).collect();
    for run in 0..runs {
        for (system, figures) in systems.iter().zip(&mut figures) {
            eprintln!("==> bench process {arch}: {} run {}/{runs}", system.name, run + 1);
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
    for (system, figures) in systems.iter().zip(&mut figures) {
        figures.costs = measure_guest_costs(arch, system)?;
    }
    Ok(figures)
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() { f64::NAN } else { median_min_max(values.to_vec()).0 }
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let (mut with_linux, mut arches, mut runs) = (true, Arch::ALL.to_vec(), RUNS);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--no-linux" => with_linux = false,
            "--arch" => arches = Arch::parse_list(&value()?)?,
            "--runs" => runs = value()?.parse().ok().filter(|&n| n > 0).ok_or("--runs takes a positive number")?,
            other => return Err(format!("unknown option `{other}` for bench process (--arch A|all, --runs N, --no-linux)").into()),
        }
    }
    let mut rows = Vec::new();
    for arch in arches.into_iter().filter(|a| a.is_supported()) {
        let mut systems = vec![libos(arch)?];
        if with_linux {
            systems.push(linux_guest(arch)?);
        }
        for (system, figures) in systems.iter().zip(measure(arch, &systems, runs)?) {
            rows.push((arch, system.name, figures));
        }
    }
    let mib_per_s = |ms: f64| f64::from(PIPE_MIB) / (ms / 1e3);
    let json = serde_json::json!({
        "suite": "process",
        "host": host_facts(),
        "method": format!("bench/c/process_ops.c: fork {FORKS} (fork + _exit(0) + waitpid, the parent's CLOCK_MONOTONIC per round) and pipe {PIPE_MIB} (1 MiB writes by a child, 1 MiB reads by the parent); QEMU TCG without icount, median of {runs} interleaved runs, then one run each under -icount shift=0,sleep=off for guest instructions (busy: counter minus idle, per process's own CPU); libos: apps/elf-runner under the process host (microvm / virt-gicv3, 128 MiB), Linux: the baseline guest (q35 / virt-gicv3, 256 MiB); host_* figures: the process host's own clock per fork"),
        "results": rows.iter().map(|(arch, system, f)| serde_json::json!({
            "arch": arch.to_string(), "system": system,
            "fork_wait_ms_median": round(median(&f.fork_median)), "fork_wait_ms_min": round(median(&f.fork_min)),
            "pipe_ms": round(median(&f.pipe_total)), "pipe_ms_after_first_byte": round(median(&f.pipe_streaming)),
            "pipe_mib_per_s": round(mib_per_s(median(&f.pipe_streaming))),
            "host_fork_saved_ms_median": if f.host_saved.is_empty() { serde_json::Value::Null } else { round(median(&f.host_saved)).into() },
            "host_fork_child_running_ms_median": if f.host_running.is_empty() { serde_json::Value::Null } else { round(median(&f.host_running)).into() },
            "instructions_fork_parent": round(f.costs.fork_parent),
            "instructions_fork_child": f.costs.fork_child.map(round),
            "instructions_fork_total": round(f.costs.fork_total()),
            "instructions_pipe_reader_per_mib": round(f.costs.pipe_reader),
            "instructions_pipe_writer_per_mib": f.costs.pipe_writer.map(round),
            "instructions_pipe_total_per_mib": round(f.costs.pipe_total()),
            "exits_pipe_per_mib": round(f.costs.pipe_exits),
        })).collect::<Vec<_>>(),
    });
    let mut md = String::from("# Process benchmark (`./x bench process`)\n\n");
    md += &format!(
        "The same static musl program (`bench/c/process_ops.c`) on libos, where every process is a VM of its own (the \
         process host of `./x`; a fork is a copy of the VM made with QEMU's migration), and in the Linux guest on the same \
         QEMU. **Wall clock under QEMU TCG**, median of {runs} interleaved runs. Host: {}.\n\n\
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
    md += "\n\n## Guest instructions (icount)\n\nOne more run of each under `-icount shift=0,sleep=off` (deterministic \
           instruction counts; every QEMU of a libos run gets the same options). Busy instructions: a window's counter ticks minus \
           the CPU's idle time in it. On libos each process is a VM and reports its own: the total is the parent's VM per round plus \
           the child's VM from its parent's `fork` call back into the program (counts the parent's part before the copy twice, leaves \
           out the child's `_exit`); the reader's VM plus the writer's per MiB. The Linux guest has one CPU: the parent's (reader's) \
           window holds both processes and the kernel.\n\n";
    md += "| arch | system | fork: parent | fork: child, fork call to program | fork total | pipe per MiB: reader | writer | total | total / Linux | pipe: exits per MiB |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for (arch, system, f) in &rows {
        let i = &f.costs;
        let linux = rows.iter().find(|r| r.0 == *arch && r.1 == "Linux").map(|r| r.2.costs.pipe_total());
        let optional = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        md += &format!(
            "| {arch} | {system} | {:.0} | {} | {:.0} | {:.0} | {} | {:.0} | {} | {:.1} |\n",
            i.fork_parent,
            optional(i.fork_child),
            i.fork_total(),
            i.pipe_reader,
            optional(i.pipe_writer),
            i.pipe_total(),
            linux.map_or("-".to_string(), |l| format!("{:.2}", i.pipe_total() / l)),
            i.pipe_exits
        );
    }
    md += "\nThe child's path back into the program is the figure to hold against `hello`'s entry-to-`main` \
           (`bench/results/boot.md`): a child does not boot, it resumes from the copy. Exits per MiB: MMIO/PIO accesses and \
           virtio notifications in the same windows (QEMU trace events, one log per QEMU), without the console's (the programs' \
           report lines); on libos the reader's VM plus the writer's. Not measured: exits per fork.\n";
    let dir = results_dir()?;
    std::fs::write(dir.join("process.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(dir.join("process.md"), &md)?;
    print!("{md}");
    eprintln!("==> wrote bench/results/process.json and bench/results/process.md");
    Ok(0)
}
