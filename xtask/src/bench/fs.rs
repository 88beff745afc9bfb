//! `./x bench fs`: the file workload on libos's ramfs (the `fsbench` app) and, from the same
//! run, the same workload on tmpfs in the Linux guest baseline (`bench/c/fs_tmpfs.c`, see
//! [`crate::linux`]), in guest instructions per operation, side by side; then
//! [`super::fs_compare`]'s table of one program on ramfs, ext2 and virtio-fs of both systems.
//!
//! Both guests run under `-icount shift=0,sleep=off`, where the x86_64 TSC advances one tick per
//! guest instruction (checked: the counter runs at ~1 GHz), so the tick counts the programs
//! print around each workload are instruction counts (two runs each, compared). Workloads, in
//! this order on both: create (open `O_CREAT|O_EXCL` + close), stat and unlink of 10 000 files
//! in `/bench`; sequential write and read of one file in 4 KiB and 1 MiB calls; 10 000 random
//! 4 KiB reads. The Linux figures include everything Linux does meanwhile (system-call entry
//! and exit, its periodic timer tick), which is the point of the comparison.
//!
//! Guest RAM: libos `FILE + FILE/8 + 96` MiB (the file, heap overhead, the small files); Linux
//! `FILE + 256` MiB (kernel, initramfs, the tmpfs pages), with a tmpfs of `FILE + 64` MiB.

use super::{host_facts, results_dir};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{LinuxGuest, bench_counters, check_run};
use crate::measure;
use crate::qemu::{self, Exit, VmConfig};
use crate::{Result, build};
use std::time::Duration;

/// Targets from issue 5.
const TARGETS: &str =
    "create+stat+unlink <= 1/3 of a Linux guest on tmpfs; sequential reads <= Linux's instructions per byte";

/// The workloads, in the order both programs run them.
const WORKLOADS: [&str; 8] =
    ["create", "stat", "unlink", "seq-write-4k", "seq-read-4k", "seq-write-1m", "seq-read-1m", "rand-read-4k"];

/// One `[fsbench]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Workload {
    name: String,
    ops: u64,
    bytes: u64,
    ticks: u64,
}

fn parse(console: &str) -> Vec<Workload> {
    console
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("[fsbench] ")?;
            let mut words = rest.split(' ');
            let name = words.next()?.to_string();
            let mut value = |key: &str| words.next()?.strip_prefix(key)?.parse::<u64>().ok();
            Some(Workload { name, ops: value("ops=")?, bytes: value("bytes=")?, ticks: value("ticks=")? })
        })
        .collect()
}

/// The workloads of `fs_tmpfs` from its `[bench] W.ops/W.bytes/W.ticks` counters.
fn parse_linux(counters: &measure::Counters) -> Result<Vec<Workload>> {
    WORKLOADS
        .iter()
        .map(|name| {
            let get = |key: &str| counters.get(&format!("{name}.{key}")).copied().ok_or_else(|| format!("fs_tmpfs printed no {name}.{key}"));
            Ok(Workload { name: name.to_string(), ops: get("ops")?, bytes: get("bytes")?, ticks: get("ticks")? })
        })
        .collect()
}

fn counter_hz(console: &str) -> Option<u64> {
    console.lines().find_map(|l| l.strip_prefix("[fsbench] counter-hz ")?.trim().parse().ok())
}

/// Instructions per operation and per byte of a workload whose ticks run at `hz`.
fn per_op(w: &Workload, hz: u64) -> f64 {
    w.ticks as f64 * 1e9 / hz as f64 / w.ops.max(1) as f64
}

fn per_byte(w: &Workload, hz: u64) -> Option<f64> {
    (w.bytes != 0).then(|| w.ticks as f64 * 1e9 / hz as f64 / w.bytes as f64)
}

/// Instructions of one create+stat+unlink cycle.
fn cycle(workloads: &[Workload], hz: u64) -> Option<f64> {
    ["create", "stat", "unlink"].iter().map(|n| workloads.iter().find(|w| w.name == *n).map(|w| per_op(w, hz))).sum()
}

/// What the targets say about one pair of results.
#[derive(Debug, PartialEq)]
struct Verdict {
    /// ramfs cycle / Linux cycle.
    cycle_ratio: Option<f64>,
    /// ramfs instructions per byte / Linux's, for seq-read-4k and seq-read-1m.
    read_ratios: Vec<(String, f64)>,
}

impl Verdict {
    fn new(ramfs: &[Workload], ramfs_hz: u64, linux: &[Workload], linux_hz: u64) -> Verdict {
        let cycle_ratio = cycle(ramfs, ramfs_hz).zip(cycle(linux, linux_hz)).map(|(r, l)| r / l);
        let read_ratios = ["seq-read-4k", "seq-read-1m"]
            .iter()
            .filter_map(|name| {
                let r = per_byte(ramfs.iter().find(|w| w.name == *name)?, ramfs_hz)?;
                let l = per_byte(linux.iter().find(|w| w.name == *name)?, linux_hz)?;
                Some((name.to_string(), r / l))
            })
            .collect();
        Verdict { cycle_ratio, read_ratios }
    }

    fn cycle_met(&self) -> Option<bool> {
        self.cycle_ratio.map(|r| r <= 1.0 / 3.0)
    }

    fn reads_met(&self) -> Option<bool> {
        (self.read_ratios.len() == 2).then(|| self.read_ratios.iter().all(|(_, r)| *r <= 1.0))
    }
}

/// The Linux side: `fs_tmpfs` twice under icount.
fn linux_tmpfs(file_mib: u64, files: u64) -> Result<(Vec<Workload>, u64, measure::Repeated, VmConfig)> {
    let guest = LinuxGuest::build(Arch::X86_64)?;
    let mut config = guest.config("fs_tmpfs", &[file_mib.to_string(), files.to_string()], &[], "");
    config.memory = format!("{}M", file_mib + 256);
    config.timeout = Duration::from_secs(900);
    eprintln!("==> Linux tmpfs: fs_tmpfs under icount, {file_mib} MiB file, 2 runs ({} guest RAM)", config.memory);
    let repeated = measure::icount_twice(&config, |o| {
        check_run("fs_tmpfs under icount", o)?;
        Ok(bench_counters(&o.console))
    })?;
    let hz = *repeated.counters.get("counter-hz").ok_or("fs_tmpfs printed no counter-hz")?;
    let workloads = parse_linux(&repeated.counters)?;
    Ok((workloads, hz, repeated, config))
}

fn yes(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not measured",
    }
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let mut file_mib = 256u64;
    let mut compare = super::fs_compare::Sizes { file_mib: 64, files: 10_000 };
    let mut with_linux = true;
    let mut only_compare = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--file-mib" => file_mib = args.next().ok_or("--file-mib needs a number")?.parse()?,
            "--compare-mib" => compare.file_mib = args.next().ok_or("--compare-mib needs a number")?.parse()?,
            "--compare-files" => compare.files = args.next().ok_or("--compare-files needs a number")?.parse()?,
            "--only-compare" => only_compare = true,
            "--no-linux" => with_linux = false,
            other => return Err(format!("unknown option `{other}` for bench fs (expected --file-mib N, --compare-mib N, --compare-files N, --only-compare, --no-linux)").into()),
        }
    }
    if !only_compare {
        let status = ramfs_table(file_mib, with_linux)?;
        if status != 0 {
            return Ok(status);
        }
    }
    super::fs_compare::run(compare, with_linux)
}

/// The first table: `fsbench` on ramfs against `fs_tmpfs` on the Linux guest's tmpfs.
fn ramfs_table(file_mib: u64, with_linux: bool) -> Result<i32> {
    let files = 10_000u64;
    let arch = Arch::X86_64;
    let image = build::build_app("fsbench", arch, false)?;
    let mut config = VmConfig::new(arch, image);
    config.accel = Accel::Tcg;
    config.icount = true;
    config.memory = format!("{}M", file_mib + file_mib / 8 + 96);
    config.cmdline = qemu::kernel_cmdline("", &["--file-mib".to_string(), file_mib.to_string(), "--files".to_string(), files.to_string()]);
    config.timeout = Duration::from_secs(600);
    let mut runs = Vec::new();
    for run in 1..=2 {
        eprintln!("==> fsbench under icount, {file_mib} MiB file, run {run} of 2 ({} guest RAM)", config.memory);
        let outcome = qemu::run(&config, false)?;
        if outcome.exit != Exit::Code(0) || !outcome.console.contains("[fsbench] done") {
            return Err(format!("fsbench ended with {:?}:\n{}", outcome.exit, outcome.console).into());
        }
        runs.push(outcome.console);
    }
    let workloads = parse(&runs[0]);
    let deterministic = workloads == parse(&runs[1]);
    let hz = counter_hz(&runs[0]).ok_or("no counter-hz line")?;
    let ticks_are_instructions = hz.abs_diff(1_000_000_000) < 10_000_000;
    let linux = if with_linux { Some(linux_tmpfs(file_mib, files)?) } else { None };
    let verdict = linux.as_ref().map(|(l, lhz, ..)| Verdict::new(&workloads, hz, l, *lhz));
    let linux_of = |name: &str| linux.as_ref().and_then(|(l, lhz, ..)| l.iter().find(|w| w.name == name).map(|w| (w, *lhz)));

    let json = serde_json::json!({
        "suite": "fs",
        "arch": arch.name(),
        "host": host_facts(),
        "method": "QEMU TCG -icount shift=0,sleep=off; counter ticks around each workload converted to instructions (1 ns per instruction); libos: fsbench on the root ramfs (microvm); Linux: bench/c/fs_tmpfs.c on a tmpfs at /bench (q35, Debian cloud kernel)",
        "file_mib": file_mib,
        "files": files,
        "guest_memory": config.memory,
        "counter_hz_under_icount": hz,
        "ticks_are_instructions": ticks_are_instructions,
        "deterministic_over_2_runs": deterministic,
        "workloads": workloads.iter().map(|w| {
            let linux = linux_of(&w.name);
            serde_json::json!({
                "name": w.name, "ops": w.ops, "bytes": w.bytes, "instructions": (w.ticks as f64 * 1e9 / hz as f64).round(),
                "instructions_per_op": per_op(w, hz).round(),
                "instructions_per_byte": per_byte(w, hz).map(|b| (b * 1000.0).round() / 1000.0),
                "linux_tmpfs_instructions_per_op": linux.map(|(l, lhz)| per_op(l, lhz).round()),
                "linux_tmpfs_instructions_per_byte": linux.and_then(|(l, lhz)| per_byte(l, lhz)).map(|b| (b * 1000.0).round() / 1000.0),
            })
        }).collect::<Vec<_>>(),
        "create_stat_unlink_cycle_instructions": cycle(&workloads, hz).map(f64::round),
        "linux_baseline": linux.as_ref().map(|(l, lhz, repeated, config)| serde_json::json!({
            "program": "bench/c/fs_tmpfs.c",
            "guest_memory": config.memory,
            "counter_hz": lhz,
            "repeatable_over_2_runs": repeated.repeatable(),
            "unrepeatable_counters": repeated.unrepeatable,
            "create_stat_unlink_cycle_instructions": cycle(l, *lhz).map(f64::round),
            "qemu_command": super::linux::command_line(config),
        })),
        "targets": {
            "text": TARGETS,
            "cycle_ratio_ramfs_to_linux": verdict.as_ref().and_then(|v| v.cycle_ratio).map(|r| (r * 1000.0).round() / 1000.0),
            "cycle_met": verdict.as_ref().and_then(Verdict::cycle_met),
            "read_per_byte_ratios_ramfs_to_linux": verdict.as_ref().map(|v| v.read_ratios.iter().map(|(n, r)| serde_json::json!({ "workload": n, "ratio": (r * 1000.0).round() / 1000.0 })).collect::<Vec<_>>()),
            "sequential_reads_met": verdict.as_ref().and_then(Verdict::reads_met),
        },
    });
    let dir = results_dir()?;
    std::fs::write(dir.join("fs.json"), serde_json::to_string_pretty(&json)? + "\n")?;

    let mut md = String::new();
    md += "# File-system benchmark (`./x bench fs`)\n\n";
    md += &format!(
        "x86_64, guest instructions under QEMU TCG `-icount shift=0,sleep=off` (1 counter tick = 1 instruction: \
         {ticks_are_instructions}), {file_mib} MiB file, {files} files. **libos**: `fsbench` on the root ramfs through \
         `libos::fs`, microvm, {} guest RAM, identical over 2 runs: {deterministic}. ",
        config.memory
    );
    match &linux {
        Some((_, _, repeated, lconfig)) => {
            md += &format!(
                "**Linux**: `bench/c/fs_tmpfs.c` (static musl) on a tmpfs at `/bench`, Debian cloud kernel, q35, {} guest RAM, \
                 repeatable over 2 runs: {}; its figures include system-call entry/exit and the kernel's timer ticks.\n\n",
                lconfig.memory,
                repeated.repeatable()
            );
        }
        None => md += "Linux: not run (`--no-linux`).\n\n",
    }
    md += "| workload | operations | libos ramfs instr/op | Linux tmpfs instr/op | ramfs / Linux | libos instr/byte | Linux instr/byte |\n|---|---|---|---|---|---|---|\n";
    for w in &workloads {
        let linux = linux_of(&w.name);
        let byte = per_byte(w, hz).map_or(String::from("-"), |b| format!("{b:.3}"));
        let lop = linux.map_or(String::from("-"), |(l, lhz)| format!("{:.0}", per_op(l, lhz)));
        let ratio = linux.map_or(String::from("-"), |(l, lhz)| format!("{:.2}", per_op(w, hz) / per_op(l, lhz)));
        let lbyte = linux.and_then(|(l, lhz)| per_byte(l, lhz)).map_or(String::from("-"), |b| format!("{b:.3}"));
        md += &format!("| {} | {} | {:.0} | {lop} | {ratio} | {byte} | {lbyte} |\n", w.name, w.ops, per_op(w, hz));
    }
    if let Some(c) = cycle(&workloads, hz) {
        let lc = linux.as_ref().and_then(|(l, lhz, ..)| cycle(l, *lhz));
        let lcs = lc.map_or(String::from("-"), |l| format!("{l:.0}"));
        let ratio = lc.map_or(String::from("-"), |l| format!("{:.2}", c / l));
        md += &format!("| create+stat+unlink cycle | | **{c:.0}** | **{lcs}** | {ratio} | | |\n");
    }
    md += "\n| target (issue 5) | measured | met |\n|---|---|---|\n";
    let cycle_text = verdict.as_ref().and_then(|v| v.cycle_ratio).map_or(String::from("-"), |r| format!("ramfs cycle = {r:.2} x Linux"));
    md += &format!("| create+stat+unlink <= 1/3 of Linux tmpfs | {cycle_text} | {} |\n", yes(verdict.as_ref().and_then(Verdict::cycle_met)));
    let reads_text = verdict.as_ref().map_or(String::from("-"), |v| {
        v.read_ratios.iter().map(|(n, r)| format!("{n}: {r:.2} x Linux per byte")).collect::<Vec<_>>().join("; ")
    });
    md += &format!("| sequential reads <= Linux instructions per byte | {reads_text} | {} |\n", yes(verdict.as_ref().and_then(Verdict::reads_met)));
    std::fs::write(dir.join("fs.md"), &md)?;
    print!("{md}");
    eprintln!("==> wrote bench/results/fs.json and bench/results/fs.md");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fsbench_lines() {
        let console = "[fsbench] counter-hz 1000000000\n[fsbench] create ops=10 bytes=0 ticks=1234\nnoise\n[fsbench] seq-read-4k ops=2 bytes=8192 ticks=99\n[fsbench] broken ops=x\n[fsbench] done\n";
        assert_eq!(
            parse(console),
            [
                Workload { name: "create".into(), ops: 10, bytes: 0, ticks: 1234 },
                Workload { name: "seq-read-4k".into(), ops: 2, bytes: 8192, ticks: 99 },
            ]
        );
        assert_eq!(counter_hz(console), Some(1_000_000_000));
    }

    #[test]
    fn linux_counters_become_workloads_and_targets_are_checked() {
        let mut counters = measure::Counters::new();
        for (i, name) in WORKLOADS.iter().enumerate() {
            let bytes = if name.starts_with("seq") || name.starts_with("rand") { 4096 } else { 0 };
            counters.insert(format!("{name}.ops"), 10);
            counters.insert(format!("{name}.bytes"), bytes);
            counters.insert(format!("{name}.ticks"), 30_000 + i as u64);
        }
        let linux = parse_linux(&counters).unwrap();
        assert_eq!(linux[0], Workload { name: "create".into(), ops: 10, bytes: 0, ticks: 30_000 });
        counters.remove("stat.ticks");
        assert!(parse_linux(&counters).is_err());
        // ramfs: a cycle of 3 000 instructions against Linux's ~9 000, reads twice as cheap.
        let ramfs: Vec<Workload> = linux.iter().map(|w| Workload { ticks: w.ticks / 10, ..w.clone() }).collect();
        let verdict = Verdict::new(&ramfs, 1_000_000_000, &linux, 1_000_000_000);
        assert!(verdict.cycle_ratio.unwrap() < 0.11);
        assert_eq!((verdict.cycle_met(), verdict.reads_met()), (Some(true), Some(true)));
        // A Linux counter at 62.5 MHz (aarch64): its ticks are 16 instructions each.
        let slow = Verdict::new(&ramfs, 1_000_000_000, &linux, 62_500_000);
        assert!(slow.cycle_ratio.unwrap() < verdict.cycle_ratio.unwrap());
        let worse = Verdict::new(&linux, 1_000_000_000, &ramfs, 1_000_000_000);
        assert_eq!((worse.cycle_met(), worse.reads_met()), (Some(false), Some(false)));
    }
}
