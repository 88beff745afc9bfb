//! `./x bench shim`: posix-shim's system-call costs in guest instructions (QEMU TCG
//! `-icount shift=0,sleep=off`, so counter ticks convert to instructions), next to the Linux
//! guest running the same static C program (`bench/c/shim_ops.c`) on the same QEMU:
//!
//! - a null system call: musl's `getppid()` (the libc function around the inline system call,
//!   as lmbench measures it), and the same call through musl's `syscall()` wrapper;
//! - a 4 KiB `pread` from a file (libos: ramfs; Linux: tmpfs);
//! - an open + fstat + read 4 KiB + close cycle.
//!
//! libos runs the program as `apps/c-bench` (microvm / virt), Linux in the baseline guest (q35 /
//! virt, Debian cloud kernel). Two runs each, checked to repeat. Targets (issue 8): null system
//! call <= 80 instructions; the cycle <= 1/2 of Linux's.

use super::{host_facts, results_dir, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{LinuxGuest, bench_counters, check_run};
use crate::measure::{self, Counters};
use crate::qemu::{self, Exit, VmConfig};
use crate::{Result, build};
use std::time::Duration;

const TARGET_NULL: f64 = 80.0;
const TARGET_CYCLE_RATIO: f64 = 0.5;
const WORKLOADS: [&str; 4] = ["getppid", "getppid_syscall", "pread4k", "cycle"];
/// Index in [`WORKLOADS`] of the figure each target is about.
const NULL: usize = 0;
const CYCLE: usize = 3;
const ITERATIONS: u64 = 20_000;

/// Instructions per operation of each workload, from a run's counters.
fn per_op(counters: &Counters) -> Result<Vec<f64>> {
    let hz = *counters.get("counter-hz").ok_or("shim_ops printed no counter-hz")? as f64;
    WORKLOADS
        .iter()
        .map(|w| {
            let get = |k: &str| counters.get(&format!("{w}.{k}")).copied().ok_or_else(|| format!("shim_ops printed no {w}.{k}"));
            Ok(get("ticks")? as f64 * 1e9 / hz / get("ops")? as f64)
        })
        .collect()
}

fn libos(arch: Arch) -> Result<measure::Repeated> {
    let image = build::build_app("c-bench", arch, true)?;
    let mut config = VmConfig::new(arch, image);
    config.accel = Accel::Tcg;
    config.cmdline = qemu::kernel_cmdline("", &[ITERATIONS.to_string()]);
    config.timeout = Duration::from_secs(300);
    eprintln!("==> {arch} libos: c-bench (bench/c/shim_ops.c) under icount, 2 runs");
    measure::icount_twice(&config, |o| {
        if o.exit != Exit::Code(0) {
            return Err(measure::failure("c-bench under icount", o));
        }
        Ok(bench_counters(&o.console))
    })
}

fn linux(arch: Arch) -> Result<measure::Repeated> {
    let guest = LinuxGuest::build(arch)?;
    let mut config = guest.config("shim_ops", &["--mount-tmpfs".into(), ITERATIONS.to_string()], &[], "");
    config.timeout = Duration::from_secs(600);
    eprintln!("==> {arch} Linux: shim_ops on tmpfs under icount, 2 runs");
    measure::icount_twice(&config, |o| {
        check_run("shim_ops under icount", o)?;
        Ok(bench_counters(&o.console))
    })
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let mut with_linux = true;
    for arg in &args {
        match arg.as_str() {
            "--no-linux" => with_linux = false,
            other => return Err(format!("unknown option `{other}` for bench shim (expected --no-linux)").into()),
        }
    }
    let mut rows = Vec::new();
    for arch in Arch::ALL.into_iter().filter(|a| a.is_supported()) {
        let ours = libos(arch)?;
        let theirs = if with_linux { Some(linux(arch)?) } else { None };
        let ours_per_op = per_op(&ours.counters)?;
        let theirs_per_op = theirs.as_ref().map(|t| per_op(&t.counters)).transpose()?;
        let repeatable = ours.unrepeatable.is_empty() && theirs.as_ref().is_none_or(|t| t.unrepeatable.is_empty());
        rows.push((arch, ours_per_op, theirs_per_op, repeatable));
    }
    let json = serde_json::json!({
        "suite": "shim",
        "host": host_facts(),
        "method": "QEMU TCG -icount shift=0,sleep=off; counter ticks around each loop of bench/c/shim_ops.c converted to instructions; libos: apps/c-bench (posix-shim, ramfs; microvm / virt-gicv3); Linux: the same static musl program on tmpfs in the baseline guest (q35 / virt-gicv3); two runs each",
        "iterations": ITERATIONS,
        "results": rows.iter().map(|(arch, ours, theirs, rep)| {
            let mut row = serde_json::json!({ "arch": arch.to_string(), "repeatable": rep });
            for (i, w) in WORKLOADS.iter().enumerate() {
                row[format!("libos_{w}")] = serde_json::json!(round(ours[i]));
                if let Some(t) = theirs {
                    row[format!("linux_{w}")] = serde_json::json!(round(t[i]));
                }
            }
            row
        }).collect::<Vec<_>>(),
        "targets": { "null_syscall_max": TARGET_NULL, "cycle_max_ratio_to_linux": TARGET_CYCLE_RATIO },
    });
    let mut md = String::from("# posix-shim benchmark (`./x bench shim`)\n\n");
    md += "Guest instructions per operation under QEMU TCG `-icount shift=0,sleep=off`, the same static musl program \
           (`bench/c/shim_ops.c`, 20 000 iterations) on libos (posix-shim, ramfs) and in the Linux guest (tmpfs). \
           Two runs each must repeat. Every figure is a whole loop iteration of the C program, so it includes \
           the C side on both systems: for the null system call the call of musl's `getppid()` and the loop \
           (lmbench's definition), and in the second row also musl's generic `syscall()` wrapper (varargs, \
           errno check: about 40 instructions on x86_64, 50 on aarch64, on both systems).\n";
    md += &format!("Host: {}.\n\n", json["host"]["cpu"].as_str().unwrap_or("?"));
    md += "| arch | operation | libos | Linux | libos / Linux |\n|---|---|---|---|---|\n";
    let names = ["null syscall (`getppid()`)", "`syscall(SYS_getppid)`", "4 KiB `pread`", "open+fstat+read+close"];
    for (arch, ours, theirs, _) in &rows {
        for (i, name) in names.iter().enumerate() {
            let (linux, ratio) = match theirs {
                Some(t) => (format!("{:.1}", t[i]), format!("{:.2}", ours[i] / t[i])),
                None => ("not measured".into(), "".into()),
            };
            md += &format!("| {arch} | {name} | {:.1} | {linux} | {ratio} |\n", ours[i]);
        }
    }
    md += &format!("\n| target | met |\n|---|---|\n| null syscall <= {TARGET_NULL:.0} instructions |");
    md += if rows.iter().all(|(_, o, _, _)| o[NULL] <= TARGET_NULL) { " yes |\n" } else { " **no** |\n" };
    md += "| open/fstat/read/close cycle <= 1/2 of Linux |";
    md += match rows.iter().map(|(_, o, t, _)| t.as_ref().map(|t| o[CYCLE] / t[CYCLE] <= TARGET_CYCLE_RATIO)).collect::<Option<Vec<_>>>() {
        Some(met) if met.iter().all(|m| *m) => " yes |\n",
        Some(_) => " **no** |\n",
        None => " not measured |\n",
    };
    let dir = results_dir()?;
    std::fs::write(dir.join("shim.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(dir.join("shim.md"), &md)?;
    print!("{md}");
    eprintln!("==> wrote bench/results/shim.json and bench/results/shim.md");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_per_operation_from_counters() {
        let counters: Counters = [
            ("counter-hz", 62_500_000),
            ("getppid.ops", 100),
            ("getppid.ticks", 400),
            ("getppid_syscall.ops", 100),
            ("getppid_syscall.ticks", 800),
            ("pread4k.ops", 10),
            ("pread4k.ticks", 10),
            ("cycle.ops", 1),
            ("cycle.ticks", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let per = per_op(&counters).unwrap();
        assert_eq!(per, vec![64.0, 128.0, 16.0, 16.0]);
        assert!(per_op(&Counters::new()).is_err());
    }
}
