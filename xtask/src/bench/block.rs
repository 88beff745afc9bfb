//! `./x bench block`: the seed's block workload, `bench/c/block_read.c` (N reads of 512 bytes
//! with `O_DIRECT` from a raw virtio-blk disk), run as the same static musl file on libos
//! (through posix-shim's ELF loader, `apps/elf-runner`) and in the Linux guest, on the same
//! machine and device (x86_64 `q35` with virtio-blk-pci, aarch64 `virt` with virtio-blk on
//! virtio-mmio, as the network benches; read-only, 64 MiB image).
//!
//! Per read, for each system: guest **busy instructions** (the loop's ticks minus the CPU's idle
//! time inside it, read by the program from cpuidle or `/proc/stat`, icount `sleep=off`),
//! **virtual ns** (the loop's ticks: instructions plus the idle time QEMU skipped), **exits**
//! and interrupts (QEMU trace events between the program's marks), and **wall** per read
//! (TCG, from the medians of boots with N and with 0 reads). Ratios libos / Linux.
//!
//! `./x bench linux` uses [`linux`] for its block row, so both suites measure one way.

use super::linux::{command_line, per_operation, ticks_to_ns};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::disk::Disk;
use crate::linux::{self, LinuxGuest, bench_counters, check_run};
use crate::measure::{self, Counters, DeviceTrace, format_figure};
use crate::qemu::{self, Outcome, VirtioTransport, VmConfig};
use crate::{Result, build};
use serde_json::{Value, json};
use std::path::PathBuf;

/// What a run of the suite does.
#[derive(Clone, Debug)]
struct Options {
    arches: Vec<Arch>,
    /// Wall-clock runs per system (at least [`measure::MIN_WALL_RUNS`]).
    runs: usize,
    /// Reads per boot (default: [`default_reads`]).
    reads: Option<u64>,
    /// Skip the Linux guest.
    no_linux: bool,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Options> {
        let mut options = Options { arches: vec![Arch::X86_64, Arch::Aarch64], runs: measure::MIN_WALL_RUNS, reads: None, no_linux: false };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--arch" => options.arches = Arch::parse_list(&value()?)?,
                "--runs" => options.runs = value()?.parse()?,
                "--reads" => options.reads = Some(value()?.parse()?),
                "--no-linux" => options.no_linux = true,
                other => return Err(format!("unknown option `{other}` for bench block (--arch, --runs, --reads, --no-linux)").into()),
            }
        }
        Ok(options)
    }
}

/// Reads per boot when not given: the seed's 100 000 on x86_64; 10 000 on aarch64, whose TCG
/// is slower (the per-read figures do not depend on it).
pub(super) fn default_reads(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 100_000,
        Arch::Aarch64 => 10_000,
    }
}

/// The raw disk image the workload reads: 64 MiB, every sector stamped with its number.
fn disk_image() -> Result<PathBuf> {
    let path = linux::cache_dir().join("disk-64M.img");
    const BYTES: usize = 64 << 20;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == BYTES as u64) {
        return Ok(path);
    }
    let mut data = vec![0u8; BYTES];
    for (sector, chunk) in data.chunks_mut(512).enumerate() {
        chunk[..8].copy_from_slice(&(sector as u64).to_le_bytes());
    }
    std::fs::create_dir_all(linux::cache_dir())?;
    std::fs::write(&path, data)?;
    Ok(path)
}

/// Attaches the workload's disk, read-only, on the arch's interrupt-driven transport (see
/// [`super::net::transport`]: virtio-pci with MSI-X on x86_64, virtio-mmio on aarch64, where
/// libos has no MSI controller driver yet and would poll a PCI device), on the machine both
/// systems boot on ([`super::net::machine`]).
fn with_disk(mut config: VmConfig, disk: &std::path::Path) -> VmConfig {
    config.machine = super::net::machine(config.arch);
    config.disks = vec![Disk { image: disk.to_path_buf(), read_only: true, snapshot: false }];
    config.virtio_transport = Some(super::net::transport(config.arch));
    config
}

/// Measures `block_read N` on one system: `config_for(n)` boots it with `n` reads, `check`
/// tells a good run.
fn measure(system: &str, arch: Arch, reads: u64, runs: usize, config_for: &dyn Fn(u64) -> VmConfig, check: fn(&str, &Outcome) -> Result<()>) -> Result<Value> {
    let (busy, idle) = (config_for(reads), config_for(0));
    eprintln!("==> {arch} {system}: block_read x{reads} (icount + device trace, 2 runs)");
    let trace = DeviceTrace::new(&linux::cache_dir().join("traces"), &format!("{arch}-{}-block", system.to_lowercase()))?;
    let mut traced = busy.clone();
    traced.extra_args.extend(trace.qemu_args());
    let repeated = measure::icount_twice(&traced, |o| {
        check(&format!("{system} block_read under icount"), o)?;
        let mut counters = bench_counters(&o.console);
        counters.extend(trace.window()?.into_iter().map(|(k, v)| (format!("device: {k}"), v)));
        Ok(counters)
    })?;
    let c = &repeated.counters;
    let get = |name: &str| c.get(name).copied().ok_or_else(|| format!("{system} block_read printed no `{name}`"));
    let (hz, ticks, idle_ticks) = (get("counter-hz")?, get("loop-ticks")?, get("idle-ticks")?);
    let devices: Counters = c.iter().filter_map(|(k, v)| Some((k.strip_prefix("device: ")?.to_string(), *v))).collect();

    eprintln!("==> {arch} {system}: wall time, block_read with {reads} and with 0 reads, {runs} interleaved runs each (TCG)");
    let spreads = measure::wall_runs(&[("block_read N", &busy), ("block_read 0", &idle)], runs, |label, o| check(label, o).is_ok())?;
    let wall_per_read_us = (spreads[0].median - spreads[1].median) * 1000.0 / reads as f64;
    Ok(json!({
        "system": system,
        "program": "bench/c/block_read.c",
        "operations": reads,
        "busy_instructions_per_read": super::round(ticks_to_ns(ticks.saturating_sub(idle_ticks), hz) / reads as f64),
        "virtual_ns_per_read": super::round(ticks_to_ns(ticks, hz) / reads as f64),
        "idle_share": super::round(idle_ticks as f64 / ticks.max(1) as f64),
        "idle_resolution_ns": c.get("idle-resolution-ns").copied().unwrap_or(0),
        "device_per_read": per_operation(&devices, reads),
        "repeatable_within_0.1%": repeated.repeatable(),
        "unrepeatable": repeated.unrepeatable,
        "wall": {
            "accelerator": Accel::Tcg.to_string(),
            "with_reads": spreads[0].json(),
            "without_reads": spreads[1].json(),
            "us_per_read": super::round(wall_per_read_us),
        },
        "qemu_command": command_line(&busy),
    }))
}

/// The Linux guest's figures on its arch (also `./x bench linux`'s block row).
pub(super) fn linux(guest: &LinuxGuest, reads: u64, runs: usize) -> Result<Value> {
    let disk = disk_image()?;
    let module = if super::net::transport(guest.arch) == VirtioTransport::Pci { guest.virtio_transport() } else { "virtio_mmio" };
    let modules = guest.modules_for(&[module, "virtio_blk"])?;
    let config_for = |n: u64| with_disk(guest.config("block_read", &[n.to_string()], &modules, ""), &disk);
    measure("Linux", guest.arch, reads, runs, &config_for, check_run)
}

/// libos's figures on `arch`: the same `block_read` file through posix-shim.
fn libos(arch: Arch, reads: u64, runs: usize) -> Result<Value> {
    linux::ensure_host_tools(&[arch])?;
    let disk = disk_image()?;
    let program = linux::compile_program("block_read", arch)?;
    let image = build::elf_runner_with(arch, true, Some(&program), None)?;
    let config_for = |n: u64| {
        let mut config = VmConfig::new(arch, image.clone());
        config.memory = "128M".into();
        // No request timeout: under icount sleep=off a halted guest's clock jumps ahead.
        config.cmdline = qemu::kernel_cmdline("blk_timeout=0", &["/bin/block_read".into(), n.to_string(), "/dev/vda".into()]);
        with_disk(config, &disk)
    };
    let check = |what: &str, outcome: &Outcome| {
        if outcome.exit == qemu::Exit::Code(0) { Ok(()) } else { Err(measure::failure(what, outcome)) }
    };
    measure("libos", arch, reads, runs, &config_for, check)
}

/// The compared figures: label, path in a system's JSON.
const FIGURES: [(&str, &str); 6] = [
    ("busy instructions", "busy_instructions_per_read"),
    ("virtual ns (instructions + skipped idle)", "virtual_ns_per_read"),
    ("exits (MMIO/PIO + notifications)", "device_per_read.total exits"),
    ("virtio notifications", "device_per_read.total virtio notifications"),
    ("interrupts injected", "device_per_read.total interrupts injected"),
    ("wall µs (TCG, from medians)", "wall.us_per_read"),
];

fn figure(system: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(system, |v, k| v.get(k)).and_then(Value::as_f64)
}

/// libos / Linux for every figure (null where Linux did not run or is 0).
fn ratios(ours: &Value, theirs: Option<&Value>) -> serde_json::Map<String, Value> {
    FIGURES
        .iter()
        .map(|&(_, path)| {
            let ratio = match (figure(ours, path), theirs.and_then(|t| figure(t, path))) {
                (Some(a), Some(b)) if b > 0.0 => json!(super::round(a / b)),
                _ => Value::Null,
            };
            (path.to_string(), ratio)
        })
        .collect()
}

fn markdown(arch: Arch, ours: &Value, theirs: Option<&Value>) -> String {
    let show = |v: Option<f64>| v.map_or("-".to_string(), format_figure);
    let device = if super::net::transport(arch) == VirtioTransport::Pci { "virtio-blk-pci" } else { "virtio-blk on virtio-mmio" };
    let mut md = format!("\n## {arch}: {} reads of 512 bytes, `O_DIRECT`, {device}\n\n", show(figure(ours, "operations")));
    md += "| per read | libos | Linux | libos / Linux |\n|---|---|---|---|\n";
    for (label, path) in FIGURES {
        let (a, b) = (figure(ours, path), theirs.and_then(|t| figure(t, path)));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        md += &format!("| {label} | {} | {} | {ratio} |\n", show(a), show(b));
    }
    md += &format!("\nIdle share of the loop: libos {}, Linux {} (resolution {} ns / {} ns).\n", show(figure(ours, "idle_share")), show(theirs.and_then(|t| figure(t, "idle_share"))), show(figure(ours, "idle_resolution_ns")), show(theirs.and_then(|t| figure(t, "idle_resolution_ns"))));
    md
}

/// Runs the suite and writes `bench/results/block.{json,md}`.
pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let options = Options::parse(args)?;
    linux::ensure_host_tools(&options.arches)?;
    let mut arches = serde_json::Map::new();
    let mut md = String::from("# Block devices (`./x bench block`)\n\nThe seed's block workload, `bench/c/block_read.c`: 512-byte `O_DIRECT` reads from a raw 64 MiB virtio-blk disk (x86_64: PCI, aarch64: MMIO), the same static musl file on libos (posix-shim, `apps/elf-runner`) and in the Linux guest (`./x bench linux`), same QEMU machine, in one run. Busy instructions: the loop's instructions minus the CPU's idle time in it (QEMU `-icount shift=0,sleep=off`, two runs each); exits: QEMU trace events between the program's marks; wall: TCG medians, labelled.\n");
    let mut failed = false;
    for &arch in &options.arches {
        let reads = options.reads.unwrap_or_else(|| default_reads(arch));
        let ours = libos(arch, reads, options.runs)?;
        let theirs = if options.no_linux {
            None
        } else {
            eprintln!("==> {arch}: building the Linux guest baseline (cached under target/linux-baseline/)");
            match LinuxGuest::build(arch).and_then(|guest| linux(&guest, reads, options.runs)) {
                Ok(value) => Some(value),
                Err(e) => {
                    eprintln!("./x: {arch} Linux block failed: {e}");
                    failed = true;
                    None
                }
            }
        };
        md += &markdown(arch, &ours, theirs.as_ref());
        arches.insert(arch.name().into(), json!({ "libos": ours, "linux": theirs, "ratios": ratios(&ours, theirs.as_ref()) }));
    }
    // A run of one arch keeps the other arch's figures from the last run (each arch compares
    // libos with Linux within one run; the arches are never compared with each other).
    if let Some(previous) = super::results_dir().ok().and_then(|d| std::fs::read_to_string(d.join("block.json")).ok()).and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        for (name, earlier) in previous["arches"].as_object().into_iter().flatten() {
            if !arches.contains_key(name) {
                let arch: Arch = name.parse()?;
                md += &format!("\n(The {arch} figures below are from an earlier run, commit {}.)\n", previous["host"]["commit"].as_str().unwrap_or("?"));
                md += &markdown(arch, &earlier["libos"], earlier.get("linux").filter(|l| !l.is_null()));
                arches.insert(name.clone(), earlier.clone());
            }
        }
    }
    let json = json!({ "suite": "block", "host": super::host_facts(), "arches": arches });
    measure::write_results("block", &json, &md, &[])?;
    print!("{md}");
    Ok(if failed { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(busy: f64, exits: f64) -> Value {
        json!({ "operations": 10, "busy_instructions_per_read": busy, "device_per_read": { "total exits": exits } })
    }

    #[test]
    fn ratios_compare_libos_with_linux_and_stay_null_without_it() {
        let r = ratios(&system(1000.0, 2.0), Some(&system(4000.0, 2.0)));
        assert_eq!(r["busy_instructions_per_read"], json!(0.25));
        assert_eq!(r["device_per_read.total exits"], json!(1.0));
        assert_eq!(ratios(&system(1.0, 1.0), None)["busy_instructions_per_read"], Value::Null);
        let md = markdown(Arch::X86_64, &system(1000.0, 2.0), Some(&system(4000.0, 2.0)));
        assert!(md.contains("| busy instructions | 1000 | 4000 | 0.25 |"), "{md}");
    }

    #[test]
    fn options_parse() {
        let o = Options::parse(["--arch", "aarch64", "--reads", "50", "--no-linux"].map(String::from).into()).unwrap();
        assert_eq!((o.arches, o.reads, o.no_linux), (vec![Arch::Aarch64], Some(50), true));
        assert!(Options::parse(vec!["--bogus".into()]).is_err());
    }
}
