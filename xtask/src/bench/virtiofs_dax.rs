//! `./x bench virtiofs --dax`: file reads through a virtio-fs DAX window against the same reads
//! with READ requests, and against ramfs, in guest instructions, requests, notifications and
//! host daemon CPU per MiB.
//!
//! x86_64 `microvm` with PCIe (the window is a PCI BAR), 1 vCPU, the patched QEMU
//! ([`crate::dax_qemu`]) for every boot, a share on the host's tmpfs, `--cache=auto`:
//!
//! - **DAX**: our daemon (`tools/virtiofsd-dax`) with a window of `--window` bytes (default
//!   256 MiB, larger than the file, so the second read of a file is served from the window);
//! - **READ**: virtiofsd 1.14 and no window: every read is READ requests (today's path, which
//!   the device makes zero-copy: the host writes into the caller's buffer);
//! - `apps/fsbench --reread` runs each workload on the share and then on the root ramfs in the
//!   same boot: sequential 4 KiB and 1 MiB reads of a freshly written file (cold: the window
//!   maps each 2 MiB chunk on first touch), the same reads again (`seq-reread-*`, warm), and
//!   4 KiB and 1 MiB reads at random offsets (warm).
//!
//! Figures per MiB read: guest instructions from an icount boot (`sleep=off`, no reply timeout:
//! the guest's clock stands still while it waits for the host, so ticks are instructions),
//! FUSE requests, SETUPMAPPINGs, queue notifications (each one a VM exit) and interrupts from
//! the guest's counters, and the daemon's CPU time (the sum of `/proc/PID/task/*/schedstat` of
//! the daemon and its children, sampled when the guest reports each workload): the host-side
//! "device work" the window saves. MiB/s come from a plain TCG boot (wall clock of this 2-core
//! host, indicative only). Writes `bench/results/virtiofs-dax.{json,md}`.

use super::host_facts;
use super::virtiofs::{Workload, counter_hz, parse};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::qemu::{self, Exit, Machine, VmConfig};
use crate::virtiofs::{Cache, Share};
use crate::{Result, build};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

const TAG: &str = "bench";

/// The workloads compared (all reads; `fsbench` also writes the files it reads).
const WORKLOADS: [&str; 6] = ["seq-read-4k", "seq-reread-4k", "seq-read-1m", "seq-reread-1m", "rand-read-4k", "rand-read-1m"];

const TARGETS: &str = "warm reads through the window (seq-reread-*, rand-read-*): 0 FUSE requests and 0 notifications per \
     MiB, guest instructions per MiB within 1.2x of ramfs; cold reads (seq-read-*): one SETUPMAPPING per 2 MiB, guest \
     instructions + daemon work per MiB at least 6x below the READ path";

struct Options {
    file_mib: u64,
    window: u64,
    linux: bool,
}

/// One workload of a boot: what the guest printed, and the daemon CPU it cost.
#[derive(Clone, Debug, Default)]
struct Measured {
    printed: Workload,
    daemon_ns: u64,
}

/// CPU nanoseconds of process `pid`, its threads and its children's (the sandboxed daemon forks
/// once): the first field of each thread's `schedstat`.
fn tree_cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    let mut pids = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the fields after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    for p in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for task in tasks.flatten() {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += schedstat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// Boots fsbench on a share with (`dax`) or without a window; returns the workloads by
/// `PASS/NAME` and the counter frequency.
fn boot(options: &Options, dax: bool, icount: bool, share_root: &std::path::Path) -> Result<(BTreeMap<String, Measured>, u64)> {
    let arch = Arch::X86_64;
    let image = build::build_app("fsbench", arch, false)?;
    let dir = share_root.join(format!("{}-{}", if dax { "dax" } else { "read" }, if icount { "icount" } else { "tcg" }));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut config = VmConfig::new(arch, image);
    config.machine = Machine::MicrovmPcie;
    config.accel = Accel::Tcg;
    config.icount = icount;
    config.memory = format!("{}M", options.file_mib + options.file_mib / 8 + 128);
    // The same QEMU for both: the patched one (without `cache-size` its device is the stock one).
    config.qemu = Some(crate::dax_qemu::ensure(arch)?);
    let args: Vec<String> =
        ["--file-mib", &options.file_mib.to_string(), "--files", "100", "--virtiofs", TAG, "--seed", "--reread"].iter().map(|s| s.to_string()).collect();
    config.cmdline = qemu::kernel_cmdline(if icount { "virtiofs_timeout=0" } else { "" }, &args);
    config.timeout = Duration::from_secs(3600);
    config.shares = vec![Share { cache: Cache::Auto, dax: dax.then_some(options.window), ..Share::new(dir.clone(), TAG) }];
    eprintln!(
        "==> fsbench on virtio-fs {} and ramfs, {} MiB file, {}",
        if dax { format!("with a {} MiB DAX window", options.window >> 20) } else { "with READ requests (virtiofsd)".to_string() },
        options.file_mib,
        if icount { "icount" } else { "plain TCG" }
    );
    let (lines, seen) = mpsc::channel();
    let running = qemu::start(&config, false, Some(lines))?;
    let daemon = running.daemons().ok_or("no daemon")?.pid(0);
    // Sample the daemon's CPU each time the guest reports a workload (it reports after the
    // last request of the workload was answered).
    let mut daemon_ns: BTreeMap<String, u64> = BTreeMap::new();
    let mut last = tree_cpu_ns(daemon);
    let mut pending = String::new();
    while let Ok(chunk) = seen.recv() {
        pending.push_str(&chunk);
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(rest) = line.trim().strip_prefix("[fsbench] ") {
                let now = tree_cpu_ns(daemon);
                if let Some(name) = rest.split(' ').next().filter(|_| rest.contains(" ops=")) {
                    daemon_ns.insert(name.to_string(), now.saturating_sub(last));
                }
                last = now;
            }
        }
    }
    let outcome = running.finish()?;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.exit != Exit::Code(0) || !outcome.console.contains("[fsbench] done") {
        return Err(format!("fsbench ended with {:?}:\n{}\n{}", outcome.exit, outcome.console, outcome.stderr).into());
    }
    let hz = counter_hz(&outcome.console).ok_or("no counter-hz line")?;
    let out = parse(&outcome.console)
        .into_iter()
        .map(|(name, printed)| {
            let daemon_ns = daemon_ns.get(&name).copied().unwrap_or(0);
            (name, Measured { printed, daemon_ns })
        })
        .collect();
    Ok((out, hz))
}

fn per_mib(value: u64, bytes: u64) -> f64 {
    value as f64 * f64::from(1 << 20) / bytes.max(1) as f64
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let mut options = Options { file_mib: 128, window: 256 << 20, linux: true };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dax" => {}
            "--no-linux" => options.linux = false,
            "--file-mib" => options.file_mib = args.next().ok_or("--file-mib needs a number")?.parse()?,
            "--window" => options.window = crate::disk::parse_size(&args.next().ok_or("--window needs a size")?)?,
            other => return Err(format!("unknown option `{other}` for bench virtiofs --dax (expected --file-mib N, --window SIZE, --no-linux)").into()),
        }
    }
    crate::virtiofs::check_dax_window(options.window)?;
    if options.file_mib < 10 {
        return Err("--file-mib must be at least 10".into());
    }
    let share_root = tempfile::Builder::new().prefix("libos-bench-dax-").tempdir_in("/dev/shm")?;
    let (dax, hz) = boot(&options, true, true, share_root.path())?;
    let (read, _) = boot(&options, false, true, share_root.path())?;
    let (dax_tcg, tcg_hz) = boot(&options, true, false, share_root.path())?;
    let (read_tcg, _) = boot(&options, false, false, share_root.path())?;
    // The Linux guest on the same patched QEMU, our daemon and window, `-o dax=always` (the
    // Debian cloud kernel has CONFIG_FUSE_DAX): its thread CPU time per workload.
    let linux = if options.linux {
        let share = Share { cache: Cache::Auto, dax: Some(options.window), ..Share::new(share_root.path().join("linux-dax"), TAG) };
        Some(super::virtiofs::linux_fs_tmpfs(options.file_mib, 100, share, "dax=always", true)?)
    } else {
        None
    };
    let ticks_are_instructions = hz.abs_diff(1_000_000_000) < 10_000_000;
    let mib_s = |runs: &BTreeMap<String, Measured>, key: &str| {
        runs.get(key).map(|m| &m.printed).filter(|w| w.ticks > 0).map(|w| (w.bytes as f64 / f64::from(1 << 20) / (w.ticks as f64 / tcg_hz as f64) * 10.0).round() / 10.0)
    };
    let mut rows = Vec::new();
    let mut md_rows = String::new();
    let mut target_lines = Vec::new();
    for name in WORKLOADS {
        let key = format!("virtiofs/{name}");
        let (Some(d), Some(r), Some(ram)) = (dax.get(&key), read.get(&key), dax.get(&format!("ramfs/{name}"))) else { continue };
        let f = |m: &Measured, k: &str| m.printed.fuse.get(k).copied().unwrap_or(0);
        let (dw, rw, ramw) = (&d.printed, &r.printed, &ram.printed);
        let row = json!({
            "workload": name,
            "bytes": dw.bytes,
            "ops": dw.ops,
            "dax_guest_instructions_per_mib": per_mib(dw.ticks, dw.bytes).round(),
            "read_guest_instructions_per_mib": per_mib(rw.ticks, rw.bytes).round(),
            "ramfs_guest_instructions_per_mib": per_mib(ramw.ticks, ramw.bytes).round(),
            "linux_dax_guest_instructions_per_mib": linux.as_ref().and_then(|l| l.get(name)).map(|&(_, cpu_ns, _)| per_mib(cpu_ns, dw.bytes).round()),
            "dax_requests_per_mib": per_mib(f(d, "requests"), dw.bytes),
            "dax_mappings_per_mib": per_mib(f(d, "mappings"), dw.bytes),
            "read_requests_per_mib": per_mib(f(r, "requests"), rw.bytes),
            "dax_notifications_per_mib": per_mib(f(d, "notifications"), dw.bytes),
            "read_notifications_per_mib": per_mib(f(r, "notifications"), rw.bytes),
            "dax_interrupts_per_mib": per_mib(f(d, "interrupts"), dw.bytes),
            "read_interrupts_per_mib": per_mib(f(r, "interrupts"), rw.bytes),
            "dax_window_bytes": f(d, "window-bytes"),
            "dax_daemon_ns_per_mib": per_mib(d.daemon_ns, dw.bytes).round(),
            "read_daemon_ns_per_mib": per_mib(r.daemon_ns, rw.bytes).round(),
            "dax_tcg_mib_per_s": mib_s(&dax_tcg, &key),
            "read_tcg_mib_per_s": mib_s(&read_tcg, &key),
            "ramfs_tcg_mib_per_s": mib_s(&dax_tcg, &format!("ramfs/{name}")),
        });
        let num = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
        let show = |v: f64, digits: usize| if v.is_nan() { "-".to_string() } else { format!("{v:.digits$}") };
        md_rows += &format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            show(num("dax_guest_instructions_per_mib"), 0),
            show(num("linux_dax_guest_instructions_per_mib"), 0),
            show(num("read_guest_instructions_per_mib"), 0),
            show(num("ramfs_guest_instructions_per_mib"), 0),
            show(num("dax_requests_per_mib"), 2),
            show(num("dax_mappings_per_mib"), 2),
            show(num("read_requests_per_mib"), 2),
            show(num("dax_notifications_per_mib"), 2),
            show(num("read_notifications_per_mib"), 2),
            show(num("dax_daemon_ns_per_mib") / 1000.0, 1),
            show(num("read_daemon_ns_per_mib") / 1000.0, 1),
            show(num("dax_tcg_mib_per_s"), 1),
            show(num("read_tcg_mib_per_s"), 1),
            show(num("ramfs_tcg_mib_per_s"), 1),
        );
        let warm = name.contains("reread") || name.starts_with("rand");
        let dax_work = num("dax_guest_instructions_per_mib");
        let vs_ramfs = dax_work / num("ramfs_guest_instructions_per_mib");
        if warm {
            let zero = num("dax_requests_per_mib") == 0.0 && num("dax_notifications_per_mib") == 0.0;
            target_lines.push(format!(
                "- {name} (warm): {} requests and {} notifications per MiB (target 0: {}); {:.0} guest instructions per MiB, \
                 {vs_ramfs:.2}x ramfs (target <= 1.2x: {})",
                show(num("dax_requests_per_mib"), 2),
                show(num("dax_notifications_per_mib"), 2),
                if zero { "met" } else { "missed" },
                dax_work,
                if vs_ramfs <= 1.2 { "met" } else { "missed" },
            ));
        } else {
            // Guest and daemon work are in different units (instructions, CPU time), so each
            // is compared on its own; the target holds when both are 6x below.
            let guest_ratio = num("read_guest_instructions_per_mib") / dax_work;
            let daemon_ratio = num("read_daemon_ns_per_mib") / num("dax_daemon_ns_per_mib");
            target_lines.push(format!(
                "- {name} (cold): {} SETUPMAPPING per MiB (target 0.5, one per 2 MiB: {}); per MiB the READ path costs \
                 {guest_ratio:.2}x the guest instructions and {daemon_ratio:.2}x the daemon CPU of the window (target >= 6x: {})",
                show(num("dax_mappings_per_mib"), 2),
                if (num("dax_mappings_per_mib") - 0.5).abs() < 0.01 { "met" } else { "missed" },
                if guest_ratio >= 6.0 && daemon_ratio >= 6.0 { "met" } else { "missed" },
            ));
        }
        rows.push(row);
    }
    let json = json!({
        "suite": "virtiofs-dax",
        "arch": "x86_64",
        "host": host_facts(),
        "machine": "QEMU 10.0.2 with tools/qemu-dax patches, microvm with PCIe, vhost-user-fs-pci, 1 vCPU, TCG",
        "share": "a fresh directory under /dev/shm, --cache=auto; DAX: libos-virtiofsd-dax with the window; READ: virtiofsd 1.14",
        "window_bytes": options.window,
        "file_mib": options.file_mib,
        "counter_hz_under_icount": hz,
        "ticks_are_instructions": ticks_are_instructions,
        "workloads": rows,
        "linux_baseline": if options.linux {
            "bench/c/fs_tmpfs.c (reread) in the share mounted -o dax=always, Linux guest q35 virtio-pci on the same patched QEMU, daemon and window, icount, thread CPU time"
        } else {
            "not run (--no-linux)"
        },
        "targets": TARGETS,
    });
    let mut md = String::new();
    md += "# virtio-fs DAX window benchmark (`./x bench virtiofs --dax`)\n\n";
    md += &format!(
        "x86_64, `fsbench --reread` on QEMU 10.0.2 with our DAX patches (`tools/qemu-dax`), microvm with PCIe, 1 vCPU, TCG. \
         Share on the host's tmpfs, `--cache=auto`. **DAX**: `libos-virtiofsd-dax` with a {} MiB window; **READ**: \
         virtiofsd 1.14, no window (every read a READ request, written by the host straight into the caller's buffer). \
         {} MiB file; `seq-read-*` read it for the first time (cold: each 2 MiB chunk is mapped on first touch), \
         `seq-reread-*` again (warm), `rand-read-*` at random offsets afterwards (warm). ramfs: the same workloads on the \
         root ramfs in the DAX boot.\n\n",
        options.window >> 20,
        options.file_mib
    );
    md += "Guest instructions: icount (`sleep=off`, no reply timeout; the clock stands still while the guest waits for the \
           host). Requests, mappings, notifications (VM exits) per MiB: the guest's counters. Daemon µs per MiB: the \
           daemon's CPU time (`schedstat` of its threads) over the workload. MiB/s: plain TCG, wall clock of this 2-core \
           host, one boot: indicative only.\n\n";
    md += "| workload | DAX instructions / MiB | Linux DAX instructions / MiB | READ instructions / MiB | ramfs instructions / MiB | DAX requests / MiB | DAX SETUPMAPPING / MiB | READ requests / MiB | DAX notifications / MiB | READ notifications / MiB | DAX daemon µs / MiB | READ daemon µs / MiB | DAX MiB/s (TCG) | READ MiB/s (TCG) | ramfs MiB/s (TCG) |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    md += &md_rows;
    md += &format!("\nTargets ({TARGETS}):\n\n{}\n", target_lines.join("\n"));
    md += "\n**Linux DAX**: the Linux guest (q35, Debian cloud kernel 6.1 with CONFIG_FUSE_DAX) on the same patched QEMU, \
           daemon and window, the share mounted `-o dax=always`, running `bench/c/fs_tmpfs.c` with the same sizes: its \
           thread's CPU time under icount per MiB (instructions run for it; `-`: not measured or `--no-linux`).\n";
    crate::measure::write_results("virtiofs-dax", &json, &md, &[])?;
    print!("{md}");
    Ok(0)
}
