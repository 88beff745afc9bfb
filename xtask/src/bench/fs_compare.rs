//! `./x bench fs`'s second table: one static program, `bench/c/fs_tmpfs.c`, on three file
//! systems of each system, in one run: libos (posix-shim, `apps/elf-runner`) on ramfs, ext2 on
//! virtio-blk and virtio-fs; the Linux guest on tmpfs, ext2 on virtio-blk (Debian's kernel
//! mounts ext2 with its ext4 driver) and virtio-fs. Same machine (x86_64 `q35`, virtio-pci),
//! same sizes, same fresh ext2 image (`mke2fs -t ext2 -b 4096`) and the same kind of share
//! (a fresh directory on the host's tmpfs, virtiofsd `--cache=auto`).
//!
//! Per workload and operation:
//! - **instructions**: libos, the program's counter ticks under `-icount shift=0,sleep=off`
//!   minus the CPU's idle time in the same window (`/sys/.../cpuidle`: a halted guest's clock
//!   jumps to its next timer under `sleep=off`, such as the buffer cache's write-back, so
//!   ticks alone count waiting; `blk_timeout=0`, `virtiofs_timeout=0`); Linux, the thread's CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`, instructions run for it, without the idle time while it
//!   waits), as `./x bench virtiofs` does;
//! - **exits**: MMIO/PIO accesses plus virtio notifications in the workload's window (QEMU
//!   trace events between the program's `[bench] mark start|end W` lines). vhost-user queues
//!   (virtio-fs) are kicked straight into virtiofsd, so their notifications are not in QEMU's
//!   trace on either system.
//!
//! Two runs per configuration (fresh image, fresh share), checked to repeat within 0.1%.

use super::linux::command_line;
use crate::arch::Arch;
use crate::disk::Disk;
use crate::linux::{self, LinuxGuest, bench_counters, check_run};
use crate::measure::{self, DeviceTrace, format_figure};
use crate::qemu::{self, Machine, Outcome, VirtioTransport, VmConfig};
use crate::virtiofs::Share;
use crate::{Result, build};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The workloads, in the order the program runs them.
const WORKLOADS: [&str; 8] = ["create", "stat", "unlink", "seq-write-4k", "seq-read-4k", "seq-write-1m", "seq-read-1m", "rand-read-4k"];

/// The share's tag on both systems.
const TAG: &str = "bench";

/// Where the files live: the file systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    /// libos ramfs / Linux tmpfs: memory only.
    Memory,
    /// ext2 on a virtio-blk disk.
    Ext2,
    /// A virtio-fs share.
    VirtioFs,
}

impl Store {
    const ALL: [Store; 3] = [Store::Memory, Store::Ext2, Store::VirtioFs];

    fn name(self, linux: bool) -> &'static str {
        match (self, linux) {
            (Store::Memory, false) => "ramfs",
            (Store::Memory, true) => "tmpfs",
            (Store::Ext2, _) => "ext2",
            (Store::VirtioFs, _) => "virtio-fs",
        }
    }
}

/// Sizes of a run.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sizes {
    /// The sequential file, MiB.
    pub file_mib: u64,
    /// Files created, stated and unlinked.
    pub files: u64,
}

/// Where a configuration's files live for one run: a fresh ext2 image or share directory.
struct Scratch {
    /// On the host's tmpfs, with an unpredictable name (mkdtemp), removed when dropped.
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let dir = tempfile::Builder::new().prefix(&format!("libos-bench-fs-{name}-")).tempdir_in("/dev/shm")?;
        std::fs::create_dir_all(dir.path().join("share"))?;
        Ok(Scratch { dir })
    }

    /// A fresh ext2 image big enough for the workload.
    fn image(&self, sizes: Sizes) -> Result<PathBuf> {
        let image = self.dir.path().join("ext2.img");
        let bytes = (sizes.file_mib * 2 + 256) << 20;
        crate::disk::create_ext2(&image, bytes, None, Some(4096))?;
        Ok(image)
    }

    /// A fresh, empty share directory.
    fn share(&self) -> Result<Share> {
        let dir = self.dir.path().join("share");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Share::new(dir, TAG))
    }
}

/// Guest RAM for both systems: the file (on ramfs/tmpfs, or in the caches), the small files,
/// the kernel.
fn memory(sizes: Sizes) -> String {
    format!("{}M", sizes.file_mib * 2 + 384)
}

/// One configuration's per-workload figures from two traced icount runs.
fn measure_config(what: &str, trace_name: &str, mut config_for: impl FnMut(&Scratch) -> Result<VmConfig>, check: fn(&str, &Outcome) -> Result<()>, instructions_key: &str) -> Result<Value> {
    let trace = DeviceTrace::new(&linux::cache_dir().join("traces"), trace_name)?;
    let scratch = Scratch::new(trace_name)?;
    let mut runs = Vec::new();
    let mut command = String::new();
    for run in 1..=2 {
        eprintln!("==> {what}: fs_tmpfs under icount + device trace, run {run} of 2");
        let mut config = config_for(&scratch)?;
        config.icount = true;
        command = command_line(&config);
        config.extra_args.extend(trace.qemu_args());
        let outcome = qemu::run(&config, false)?;
        check(what, &outcome)?;
        let mut counters = bench_counters(&outcome.console);
        for (window, counts) in trace.windows()? {
            for (name, count) in counts {
                counters.insert(format!("{window}.device: {name}"), count);
            }
        }
        runs.push(counters);
    }
    let unrepeatable = measure::unrepeatable(&runs[0], &runs[1]);
    let c = &runs[0];
    let hz = *c.get("counter-hz").ok_or_else(|| format!("{what}: no counter-hz"))?;
    let mut workloads = serde_json::Map::new();
    for name in WORKLOADS {
        let get = |key: &str| c.get(&format!("{name}.{key}")).copied().ok_or_else(|| format!("{what}: fs_tmpfs printed no {name}.{key}"));
        let ops = get("ops")?.max(1);
        let instructions = match instructions_key {
            // The window's ticks without the time the CPU was idle in it: under `sleep=off` a
            // guest halted for a device has its clock jump to its next timer (a disk's
            // write-back flush, say), which is waiting, not instructions.
            "ticks" => (super::linux::ticks_to_ns(get("ticks")?, hz) - get("idle_ns")? as f64).max(0.0),
            _ => get(instructions_key)? as f64,
        };
        let device = |kind: &str| c.get(&format!("{name}.device: {kind}")).copied().unwrap_or(0) as f64 / ops as f64;
        workloads.insert(
            name.into(),
            json!({
                "operations": ops,
                "instructions_per_op": super::round(instructions / ops as f64),
                "exits_per_op": super::round(device("total exits")),
                "interrupts_per_op": super::round(device("total interrupts injected")),
            }),
        );
    }
    Ok(json!({ "workloads": workloads, "repeatable_within_0.1%": unrepeatable.is_empty(), "unrepeatable": unrepeatable, "qemu_command": command }))
}

/// libos on `fs`: the program through posix-shim, files under `/bench`.
fn libos(image: &Path, fs: Store, sizes: Sizes) -> Result<Value> {
    let args = vec!["/bin/fs_tmpfs".to_string(), sizes.file_mib.to_string(), sizes.files.to_string(), "/bench".into()];
    let config_for = |scratch: &Scratch| {
        let mut config = VmConfig::new(Arch::X86_64, image.to_path_buf());
        config.machine = Machine::Q35;
        config.virtio_transport = Some(VirtioTransport::Pci);
        config.memory = memory(sizes);
        config.timeout = Duration::from_secs(1800);
        let options = match fs {
            Store::Memory => "mount=ramfs:/bench".to_string(),
            Store::Ext2 => {
                config.disks = vec![Disk::new(scratch.image(sizes)?)];
                format!("mount=ext2:vda:/bench blk_timeout=0 blk_cache={}M", sizes.file_mib * 2 + 64)
            }
            Store::VirtioFs => {
                config.shares = vec![scratch.share()?];
                format!("mount=virtiofs:{TAG}:/bench virtiofs_timeout=0")
            }
        };
        config.cmdline = qemu::kernel_cmdline(&options, &args);
        Ok(config)
    };
    let check = |what: &str, outcome: &Outcome| {
        if outcome.exit == qemu::Exit::Code(0) && outcome.console.contains("[bench] done: 1") { Ok(()) } else { Err(measure::failure(what, outcome)) }
    };
    measure_config(&format!("libos {}", fs.name(false)), &format!("fs-libos-{}", fs.name(false)), config_for, check, "ticks")
}

/// The Linux guest on `fs`.
fn linux_guest(guest: &LinuxGuest, fs: Store, sizes: Sizes) -> Result<Value> {
    let args = [sizes.file_mib.to_string(), sizes.files.to_string(), "/bench".into()];
    let modules = match fs {
        Store::Memory => Vec::new(),
        Store::Ext2 => guest.modules_for(&[guest.virtio_transport(), "virtio_blk"])?,
        Store::VirtioFs => guest.modules_for(&[guest.virtio_transport(), "virtiofs"])?,
    };
    let config_for = |scratch: &Scratch| {
        let mounts = match fs {
            Store::Memory => "bench.mounts=tmpfs:none:/bench".to_string(),
            Store::Ext2 => "bench.mounts=ext2:/dev/vda:/bench".to_string(),
            Store::VirtioFs => format!("bench.mounts=virtiofs:{TAG}:/bench"),
        };
        let mut config = guest.config("fs_tmpfs", &args, &modules, &mounts);
        config.virtio_transport = Some(VirtioTransport::Pci);
        config.memory = memory(sizes);
        config.timeout = Duration::from_secs(1800);
        match fs {
            Store::Memory => {}
            Store::Ext2 => config.disks = vec![Disk::new(scratch.image(sizes)?)],
            Store::VirtioFs => config.shares = vec![scratch.share()?],
        }
        Ok(config)
    };
    let check = |what: &str, outcome: &Outcome| {
        check_run(what, outcome)?;
        if outcome.console.contains("mount") && outcome.console.contains("failed") {
            return Err(measure::failure(&format!("{what}: a bench.mounts entry failed"), outcome));
        }
        Ok(())
    };
    measure_config(&format!("Linux {}", fs.name(true)), &format!("fs-linux-{}", fs.name(true)), config_for, check, "cpu_ns")
}

fn figure(system: &Value, workload: &str, key: &str) -> Option<f64> {
    system.get("workloads")?.get(workload)?.get(key)?.as_f64()
}

/// The table of one figure (`instructions_per_op` or `exits_per_op`): a row per workload, a
/// column per system and file system, and ext2's libos / Linux ratio.
fn table(results: &BTreeMap<String, Value>, key: &str) -> String {
    let columns: Vec<String> = [false, true].iter().flat_map(|&linux| Store::ALL.map(|fs| format!("{} {}", if linux { "Linux" } else { "libos" }, fs.name(linux)))).collect();
    let mut md = format!("| workload | {} | ext2 libos / Linux |\n|---|{}---|\n", columns.join(" | "), "---|".repeat(columns.len()));
    for workload in WORKLOADS {
        let cells: Vec<String> = columns.iter().map(|c| results.get(c).and_then(|s| figure(s, workload, key)).map_or("-".into(), format_figure)).collect();
        let ratio = match (results.get("libos ext2").and_then(|s| figure(s, workload, key)), results.get("Linux ext2").and_then(|s| figure(s, workload, key))) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        md += &format!("| {workload} | {} | {ratio} |\n", cells.join(" | "));
    }
    md
}

/// Measures every configuration and writes `bench/results/fs-compare.{json,md}`. Failures of
/// single configurations are reported in the table; the result is 1 if any failed.
pub(super) fn run(sizes: Sizes, with_linux: bool) -> Result<i32> {
    linux::ensure_host_tools(&[Arch::X86_64])?;
    crate::disk::ensure_e2fsprogs()?;
    crate::virtiofs::ensure_virtiofsd()?;
    let program = linux::compile_program("fs_tmpfs", Arch::X86_64)?;
    let image = build::elf_runner_with(Arch::X86_64, true, Some(&program), None)?;
    let mut results = BTreeMap::new();
    let mut failures = Vec::new();
    for fs in Store::ALL {
        let column = format!("libos {}", fs.name(false));
        match libos(&image, fs, sizes) {
            Ok(value) => drop(results.insert(column, value)),
            Err(e) => failures.push(format!("{column}: {e}")),
        }
    }
    if with_linux {
        let guest = LinuxGuest::build(Arch::X86_64)?;
        for fs in Store::ALL {
            let column = format!("Linux {}", fs.name(true));
            match linux_guest(&guest, fs, sizes) {
                Ok(value) => drop(results.insert(column, value)),
                Err(e) => failures.push(format!("{column}: {e}")),
            }
        }
    }
    let mut md = format!(
        "# File systems side by side (`./x bench fs`)\n\nOne static program, `bench/c/fs_tmpfs.c` ({} files created, stated and unlinked; a {} MiB file written and read in 4 KiB and 1 MiB calls; 10 000 random 4 KiB reads), on libos (posix-shim, `apps/elf-runner`) and in the Linux guest, on memory (ramfs / tmpfs), ext2 on virtio-blk (a fresh `mke2fs -t ext2 -b 4096` image each run; Linux mounts it with its ext4 driver; libos with `blk_cache={}M`) and virtio-fs (a fresh directory on the host's tmpfs, virtiofsd `--cache=auto`). x86_64 q35, virtio-pci, {} guest RAM, QEMU TCG.\n\n\
         **Instructions per operation**: libos, counter ticks under `-icount shift=0,sleep=off` minus the idle time in the same window (a halted guest's clock jumps to its next timer, so ticks alone would count waiting); Linux, the thread's CPU time (instructions run for it; idle waiting excluded).\n\n",
        sizes.files,
        sizes.file_mib,
        sizes.file_mib * 2 + 64,
        memory(sizes)
    );
    md += &table(&results, "instructions_per_op");
    md += "\n**Exits per operation** (MMIO/PIO accesses + virtio notifications inside the workload's window, QEMU trace events; vhost-user-fs notifications go straight to virtiofsd and are not traced on either system):\n\n";
    md += &table(&results, "exits_per_op");
    md += "\nTargets (issue 15): ext2 metadata operations (create, stat, unlink) and 4 KiB cached reads (seq-read-4k, rand-read-4k) <= 1/2 of Linux ext2's instructions: see the last column of the first table.\n";
    for (name, value) in &results {
        if value["repeatable_within_0.1%"] == false {
            md += &format!("\n{name}: figures that differed by more than 0.1% between its two runs: {}\n", value["unrepeatable"]);
        }
    }
    for failure in &failures {
        md += &format!("\n**failed**: `{}`\n", failure.lines().next().unwrap_or(""));
    }
    let json = json!({ "suite": "fs-compare", "host": super::host_facts(), "file_mib": sizes.file_mib, "files": sizes.files, "systems": results, "failed": failures });
    measure::write_results("fs-compare", &json, &md, &[])?;
    print!("{md}");
    Ok(if failures.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_column_per_system_and_the_ext2_ratio() {
        let system = |create: f64| json!({ "workloads": { "create": { "instructions_per_op": create } } });
        let results: BTreeMap<String, Value> = [("libos ext2".to_string(), system(3000.0)), ("Linux ext2".to_string(), system(12000.0)), ("libos ramfs".to_string(), system(1000.0))].into();
        let md = table(&results, "instructions_per_op");
        assert!(md.starts_with("| workload | libos ramfs | libos ext2 | libos virtio-fs | Linux tmpfs | Linux ext2 | Linux virtio-fs | ext2 libos / Linux |"), "{md}");
        assert!(md.contains("| create | 1000 | 3000 | - | - | 12000 | - | 0.25 |"), "{md}");
        assert!(md.contains("| stat | - | - | - | - | - | - | - |"), "{md}");
    }
}
