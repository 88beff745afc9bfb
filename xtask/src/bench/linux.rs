//! `./x bench linux`: the Linux guest baseline (see [`crate::linux`]) running the C programs of
//! `bench/c/`, measured with the same tools as libos ([`crate::measure`]).
//!
//! Per architecture, on libos's PCI machine (x86_64 `q35` + qboot, aarch64 `virt` GICv3,
//! cortex-a72), TCG:
//!
//! - **boot**: `boot` prints one line and exits. Instructions from `main` to just before exit
//!   (icount, twice), the virtual time at `main` (instructions plus idle time QEMU skipped), the
//!   device traffic of the whole boot, and the whole-process wall time against libos `hello`,
//!   interleaved in the same invocation;
//! - **syscall**: `getppid_loop` — instructions per null system call (icount, twice);
//! - **block**: `block_read` — 512-byte `O_DIRECT` reads from a raw virtio-blk image, measured
//!   by [`super::block::linux`] (the same function `./x bench block` compares libos with). Device
//!   traffic per read is the traffic between the program's start and end marks
//!   ([`measure::parse_trace_window`]) divided by N; wall time per read is the difference of
//!   the medians of boots with N and with 0 reads, divided by N;
//! - **icmp**: see [`super::icmp`].
//!
//! Counter ticks are instructions only while the guest never idles: under `-icount
//! shift=0,sleep=off` QEMU skips idle time to the next timer deadline, so for I/O workloads
//! (block, icmp) the tick figures are "virtual ns" (instructions plus skipped idle time) and are
//! labelled so; their device counts per operation are the repeatable headline.

use super::icmp;
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{self, LinuxGuest, bench_counters, check_run};
use crate::measure::{self, Counters, DeviceTrace, Repeated, format_figure};
use crate::qemu::{Outcome, VmConfig};
use crate::{Result, build};
use serde_json::{Value, json};

/// What a run of the suite does.
#[derive(Clone, Debug)]
pub(super) struct Options {
    /// Architectures to measure.
    pub arches: Vec<Arch>,
    /// Wall-clock runs per guest (at least 5).
    pub runs: usize,
    /// Reads in the block workload (default: [`super::block::default_reads`]).
    pub block_reads: Option<u64>,
    /// Echo requests per payload size in the ICMP workload.
    pub pings: u64,
    /// Workloads to run (boot, syscall, block, icmp).
    pub workloads: Vec<String>,
}

impl Options {
    pub(super) fn parse(args: Vec<String>) -> Result<Options> {
        let mut options = Options {
            arches: vec![Arch::X86_64, Arch::Aarch64],
            runs: measure::MIN_WALL_RUNS,
            block_reads: None,
            // The seed measurement sent 100 000 per size; under TCG a Linux guest answers about
            // 500-1500 per second, and every size runs twice (wall, icount), so 2 000 keeps the
            // suite inside the 30-minute budget of `./x bench all`.
            pings: 2_000,
            workloads: ["boot", "syscall", "block", "icmp"].map(String::from).into(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--arch" => options.arches = Arch::parse_list(&value()?)?,
                "--runs" => options.runs = value()?.parse()?,
                "--block-reads" => options.block_reads = Some(value()?.parse()?),
                "--pings" => options.pings = value()?.parse()?,
                "--only" => options.workloads = value()?.split(',').map(String::from).collect(),
                other => return Err(format!("unknown option `{other}` for bench linux (--arch, --runs, --block-reads, --pings, --only)").into()),
            }
        }
        Ok(options)
    }

    fn wants(&self, workload: &str) -> bool {
        self.workloads.iter().any(|w| w == workload)
    }
}

/// Instructions for `ticks` of a counter at `hz` under icount shift=0 (1 ns per instruction).
pub(super) fn ticks_to_ns(ticks: u64, hz: u64) -> f64 {
    ticks as f64 * 1e9 / hz.max(1) as f64
}

/// Reads a Linux guest run's `[bench]` counters after checking it succeeded.
fn guest_counters(what: &str, outcome: &Outcome) -> Result<Counters> {
    check_run(what, outcome)?;
    Ok(bench_counters(&outcome.console))
}

/// One icount run's counters plus its device-traffic summary, prefixed `device: `.
fn counters_with_trace(what: &str, outcome: &Outcome, trace: &DeviceTrace) -> Result<Counters> {
    let mut counters = guest_counters(what, outcome)?;
    for (name, count) in trace.summary()? {
        counters.insert(format!("device: {name}"), count);
    }
    Ok(counters)
}

/// A traced copy of `config` whose log lives under the baseline cache.
fn traced(config: &VmConfig, name: &str) -> Result<(VmConfig, DeviceTrace)> {
    let trace = DeviceTrace::new(&linux::cache_dir().join("traces"), name)?;
    let mut config = config.clone();
    config.extra_args.extend(trace.qemu_args());
    Ok((config, trace))
}

/// The device counts of `counters` (without their prefix).
fn device_counts(counters: &Counters) -> Counters {
    counters.iter().filter_map(|(k, v)| Some((k.strip_prefix("device: ")?.to_string(), *v))).collect()
}

/// Every count divided by `operations`, rounded to 0.01.
pub(super) fn per_operation(counts: &Counters, operations: u64) -> serde_json::Map<String, Value> {
    counts.iter().map(|(name, &count)| (name.clone(), json!(super::round(count as f64 / operations.max(1) as f64)))).collect()
}

/// The exact QEMU command of `config`, for the results.
pub(super) fn command_line(config: &VmConfig) -> String {
    let command = config.command();
    std::iter::once(command.get_program()).chain(command.get_args()).map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') { format!("'{a}'") } else { a.into_owned() }
    }).collect::<Vec<_>>().join(" ")
}

fn repeat_json(repeated: &Repeated) -> Value {
    json!({ "repeatable_within_0.1%": repeated.repeatable(), "unrepeatable": repeated.unrepeatable })
}

/// The boot workload of one arch.
fn boot(guest: &LinuxGuest, options: &Options) -> Result<Value> {
    let arch = guest.arch;
    eprintln!("==> {arch} Linux: boot (icount + device trace, 2 runs)");
    let config = guest.config("boot", &[], &[], "");
    let (traced_config, trace) = traced(&config, &format!("{arch}-boot"))?;
    let repeated = measure::icount_twice(&traced_config, |o| counters_with_trace("Linux boot under icount", o, &trace))?;
    let c = &repeated.counters;
    let hz = *c.get("counter-hz").ok_or("boot printed no counter-hz")?;
    let main_to_exit = ticks_to_ns(*c.get("main-to-exit-ticks").ok_or("boot printed no main-to-exit-ticks")?, hz);
    let reset_to_main = ticks_to_ns(*c.get("main-ticks").ok_or("boot printed no main-ticks")?, hz);

    eprintln!("==> {arch}: wall time, Linux boot vs libos hello, {} interleaved runs each (TCG)", options.runs);
    let hello = VmConfig::new(arch, build::build_app("hello", arch, false)?);
    let spreads = measure::wall_runs(&[("Linux boot", &config), ("libos hello", &hello)], options.runs, |label, outcome| {
        if label == "Linux boot" { check_run(label, outcome).is_ok() } else { measure::exited_cleanly(outcome) }
    })?;
    let (linux_wall, hello_wall) = (spreads[0], spreads[1]);
    Ok(json!({
        "program": "bench/c/boot.c",
        "instructions_main_to_exit": main_to_exit.round(),
        "virtual_ns_reset_to_main": reset_to_main.round(),
        "virtual_ns_note": "instructions plus idle time QEMU skipped (icount sleep=off); not an instruction count",
        "device_whole_boot": device_counts(c),
        "repeat": repeat_json(&repeated),
        "wall": {
            "accelerator": Accel::Tcg.to_string(),
            "runs": options.runs.max(measure::MIN_WALL_RUNS),
            "linux_boot": linux_wall.json(),
            "libos_hello": hello_wall.json(),
            "ratio_linux_over_libos": super::round(linux_wall.median / hello_wall.median),
            "libos_command": command_line(&hello),
        },
        "qemu_command": command_line(&config),
    }))
}

/// The syscall loop of one arch.
fn syscall(guest: &LinuxGuest) -> Result<Value> {
    let arch = guest.arch;
    let iterations = 100_000u64;
    eprintln!("==> {arch} Linux: getppid loop x{iterations} (icount, 2 runs)");
    let config = guest.config("getppid_loop", &[iterations.to_string()], &[], "");
    let repeated = measure::icount_twice(&config, |o| guest_counters("getppid loop under icount", o))?;
    let c = &repeated.counters;
    let hz = *c.get("counter-hz").ok_or("no counter-hz")?;
    let ticks = *c.get("loop-ticks").ok_or("no loop-ticks")?;
    Ok(json!({
        "program": "bench/c/getppid_loop.c",
        "operations": iterations,
        "instructions_per_operation": super::round(ticks_to_ns(ticks, hz) / iterations as f64),
        "repeat": repeat_json(&repeated),
        "qemu_command": command_line(&config),
    }))
}

/// Measures one arch: its JSON and its Markdown section.
fn measure_arch(arch: Arch, options: &Options) -> Result<(Value, String)> {
    eprintln!("==> {arch}: building the Linux guest baseline (cached under target/linux-baseline/)");
    let guest = LinuxGuest::build(arch)?;
    let mut workloads = serde_json::Map::new();
    let mut failures = Vec::new();
    let mut attempt = |name: &str, result: Result<Value>| match result {
        Ok(value) => {
            workloads.insert(name.into(), value);
        }
        Err(e) => {
            eprintln!("./x: {arch} Linux {name} failed: {e}");
            failures.push(json!({ "workload": name, "error": e.to_string() }));
        }
    };
    if options.wants("boot") {
        attempt("boot", boot(&guest, options));
    }
    if options.wants("syscall") {
        attempt("syscall", syscall(&guest));
    }
    if options.wants("block") {
        let reads = options.block_reads.unwrap_or_else(|| super::block::default_reads(arch));
        attempt("block", super::block::linux(&guest, reads, options.runs));
    }
    if options.wants("icmp") {
        attempt("icmp", icmp::run(&guest, options.pings));
    }
    let json = json!({
        "arch": arch.name(),
        "kernel_package": guest.kernel_package,
        "kernel_cmdline_base": linux::base_cmdline(arch),
        "accelerator": Accel::Tcg.to_string(),
        "workloads": workloads,
        "failed": failures,
    });
    let md = markdown_section(&json);
    Ok((json, md))
}

/// A figure out of `json` at `path` (`a.b.c`), formatted, or `-`.
fn figure(json: &Value, path: &str) -> String {
    path.split('.').try_fold(json, |v, k| v.get(k)).and_then(Value::as_f64).map_or("-".into(), format_figure)
}

fn markdown_section(json: &Value) -> String {
    let arch = json["arch"].as_str().unwrap_or("?");
    let w = &json["workloads"];
    let mut md = format!("\n## {arch}: Linux guest (`{}`), TCG\n\n", json["kernel_package"].as_str().unwrap_or("?"));
    md += "| workload | figure | value |\n|---|---|---|\n";
    let rows = [
        ("boot", "guest instructions, `main` to exit (icount)", "boot.instructions_main_to_exit"),
        ("boot", "virtual ns, reset to `main` (instructions + skipped idle)", "boot.virtual_ns_reset_to_main"),
        ("boot", "device accesses (MMIO/PIO), whole boot", "boot.device_whole_boot.total device accesses"),
        ("boot", "interrupts injected, whole boot", "boot.device_whole_boot.total interrupts injected"),
        ("boot", "wall, Linux boot (TCG, median ms)", "boot.wall.linux_boot.median_ms"),
        ("boot", "wall, libos `hello` (TCG, median ms)", "boot.wall.libos_hello.median_ms"),
        ("boot", "wall ratio Linux / libos (TCG)", "boot.wall.ratio_linux_over_libos"),
        ("syscall", "guest instructions per `getppid` (icount)", "syscall.instructions_per_operation"),
        ("block", "exits per 512-byte read (MMIO/PIO + virtio notifications)", "block.device_per_read.total exits"),
        ("block", "device accesses (MMIO/PIO) per read", "block.device_per_read.total device accesses"),
        ("block", "virtio notifications per read", "block.device_per_read.total virtio notifications"),
        ("block", "interrupts injected per read", "block.device_per_read.total interrupts injected"),
        ("block", "busy instructions per read (icount, idle subtracted)", "block.busy_instructions_per_read"),
        ("block", "virtual ns per read (icount; includes skipped idle)", "block.virtual_ns_per_read"),
        ("block", "wall per read (TCG, µs, from medians)", "block.wall.us_per_read"),
    ];
    for (workload, label, path) in rows {
        if w.get(workload).is_some() {
            md += &format!("| {workload} | {label} | {} |\n", figure(w, path));
        }
    }
    if let Some(sizes) = w.get("icmp").and_then(|i| i["sizes"].as_array()) {
        for size in sizes {
            let bytes = figure(size, "payload_bytes");
            md += &format!("| icmp | {bytes}-byte echo: packets/s (TCG, host `ping -f`, median of 5 floods) | {} |\n", figure(size, "pps"));
            md += &format!("| icmp | {bytes}-byte echo: exits per packet (MMIO/PIO + virtio notifications) | {} |\n", figure(size, "device_per_packet.total exits"));
            md += &format!("| icmp | {bytes}-byte echo: interrupts injected per packet | {} |\n", figure(size, "device_per_packet.total interrupts injected"));
        }
    }
    for (name, workload) in w.as_object().into_iter().flatten() {
        if let Some(repeat) = workload.get("repeat") {
            if repeat["repeatable_within_0.1%"] == false {
                md += &format!("\n{name}: counters that differed by more than 0.1% between the two icount runs: {}\n", repeat["unrepeatable"]);
            }
        }
    }
    for failure in json["failed"].as_array().into_iter().flatten() {
        md += &format!("\n**{} failed** (no figures published): `{}`\n", failure["workload"].as_str().unwrap_or("?"), failure["error"].as_str().unwrap_or("?").lines().next().unwrap_or(""));
    }
    md += "\nQEMU commands (kernel command line in `-append`):\n\n";
    for (name, workload) in w.as_object().into_iter().flatten() {
        if let Some(command) = workload.get("qemu_command").and_then(Value::as_str) {
            md += &format!("- {name}: `{command}`\n");
        }
    }
    md
}

/// Runs the suite and writes `bench/results/linux.{json,md}` and its plots.
pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let options = Options::parse(args)?;
    linux::ensure_host_tools(&options.arches)?;
    let mut arches = serde_json::Map::new();
    let mut md = String::from("# Linux guest baseline (`./x bench linux`)\n\nDebian's cloud kernel with a busybox initramfs running the static musl programs of `bench/c/`, on the same QEMU machines as libos. Instruction figures: QEMU TCG `-icount shift=0,sleep=off`, two runs each, checked to repeat within 0.1%. Device figures: QEMU trace events. Wall figures: TCG, medians, labelled.\n");
    let mut plot_bars = Vec::new();
    for &arch in &options.arches {
        let (json, section) = measure_arch(arch, &options)?;
        if let Some(ratio) = json["workloads"]["boot"]["wall"]["ratio_linux_over_libos"].as_f64() {
            plot_bars.push((format!("{arch}: Linux boot / libos hello"), ratio));
        }
        md += &section;
        arches.insert(arch.name().into(), json);
    }
    let json = json!({ "suite": "linux", "host": super::host_facts(), "arches": arches });
    let mut plots = Vec::new();
    if !plot_bars.is_empty() {
        plots.push(("linux-boot-wall-ratio.svg".to_string(), measure::bar_chart_svg("Whole-boot wall time, Linux guest / libos hello (TCG)", "x", &plot_bars)));
        md += "\n![wall ratio](linux-boot-wall-ratio.svg)\n";
    }
    measure::write_results("linux", &json, &md, &plots)?;
    print!("{md}");
    let failed = arches.values().any(|a| a["failed"].as_array().is_some_and(|f| !f.is_empty()));
    Ok(if failed { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_operation_are_rounded() {
        let counts: Counters = [("a".to_string(), 1_000_000), ("b".to_string(), 50)].into();
        let per = per_operation(&counts, 1000);
        assert_eq!(per["a"], json!(1000.0));
        assert_eq!(per["b"], json!(0.05));
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(["--arch", "x86_64", "--only", "boot,block", "--block-reads", "10"].map(String::from).into()).unwrap();
        assert_eq!(o.arches, [Arch::X86_64]);
        assert!(o.wants("block") && !o.wants("icmp"));
        assert_eq!(o.block_reads, Some(10));
        assert!(Options::parse(vec!["--bogus".into()]).is_err());
    }
}
