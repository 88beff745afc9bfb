//! `./x bench virtiofs`: the file workloads of `apps/fsbench` on a virtio-fs share and on ramfs
//! in the same boot, for virtiofsd `--cache=never` and `--cache=auto`.
//!
//! Per cache policy, x86_64 microvm (virtio-mmio), shared directory on the host's tmpfs
//! (`/dev/shm`), one virtiofsd (sandboxed as [`crate::virtiofs`] picks: namespaces where the host allows them;
//! started and stopped by [`crate::qemu`]):
//!
//! - an **icount** boot (`-icount shift=0,sleep=off`, kernel option `virtiofs_timeout=0`): the
//!   guest's counter ticks one per guest instruction. The device completes requests by
//!   interrupt; while the guest halts waiting for virtiofsd no timer is armed, so its clock
//!   stands still, and a workload's ticks are exactly the instructions the guest executed,
//!   interrupt handling included: the headline "guest instructions" figure. (Where the device
//!   has no interrupt and polls, the ticks also hold the polling loop; the device counts the
//!   time callers spend waiting, `wait-ns`, and the figure is ticks minus it.) FUSE requests and bytes come
//!   from the mount's counters, queue notifications and interrupts from the device's (guest-side counts:
//!   with vhost-user the queues are served by virtiofsd, so QEMU's virtqueue trace events never
//!   fire for them);
//! - a **TCG** boot without icount: the same workloads timed by the TSC, as MiB/s (wall clock,
//!   TCG, one run; labelled as such).
//!
//! - the **Linux guest** baseline ([`crate::linux`], q35 + virtio-pci, Debian cloud kernel with
//!   the `virtiofs` module) running `bench/c/fs_tmpfs.c` in the share mounted at `/mnt`, under
//!   icount. Linux sleeps while it waits for the host, and QEMU skips that idle time, so its
//!   ticks are not instructions; the program reports its thread's CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`), which under icount is the instructions the kernel and the
//!   program ran for it. Interrupt work done while the CPU was idle is not in it, so the Linux
//!   figure is, if anything, low.

use super::host_facts;
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{LinuxGuest, bench_counters, check_run};
use crate::qemu::{self, Exit, VmConfig};
use crate::virtiofs::{Cache, Share};
use crate::{Result, build};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const TAG: &str = "bench";

const TARGETS: &str = "per 1 MiB sequential read: one FUSE request, <= 1 notification, <= 1 interrupt, \
     and >= 1.5x fewer guest instructions than a Linux guest on the same share";

/// One workload of one pass, as the guest printed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Workload {
    pub(super) ops: u64,
    pub(super) bytes: u64,
    pub(super) ticks: u64,
    /// `fuse` line fields (virtio-fs pass only).
    pub(super) fuse: BTreeMap<String, u64>,
}

/// `[fsbench] PASS/NAME ops=.. bytes=.. ticks=..` and `[fsbench] PASS/NAME fuse k=v ...`
/// lines, by `PASS/NAME`.
pub(super) fn parse(console: &str) -> BTreeMap<String, Workload> {
    let mut out: BTreeMap<String, Workload> = BTreeMap::new();
    for line in console.lines() {
        let Some(rest) = line.strip_prefix("[fsbench] ") else { continue };
        let mut words = rest.split(' ');
        let Some(name) = words.next().filter(|n| n.contains('/')) else { continue };
        let fields: BTreeMap<String, u64> = words
            .clone()
            .filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        let entry = out.entry(name.to_string()).or_default();
        if rest.split(' ').nth(1) == Some("fuse") {
            entry.fuse = fields;
        } else if let (Some(&ops), Some(&bytes), Some(&ticks)) = (fields.get("ops"), fields.get("bytes"), fields.get("ticks")) {
            entry.ops = ops;
            entry.bytes = bytes;
            entry.ticks = ticks;
        }
    }
    out
}

pub(super) fn counter_hz(console: &str) -> Option<u64> {
    console.lines().find_map(|l| l.strip_prefix("[fsbench] counter-hz ")?.trim().parse().ok())
}

struct Options {
    file_mib: u64,
    files: u64,
    linux: bool,
}

fn boot(options: &Options, cache: Cache, icount: bool, share_root: &std::path::Path) -> Result<(String, u64)> {
    let arch = Arch::X86_64;
    let image = build::build_app("fsbench", arch, false)?;
    let dir = share_root.join(format!("{}-{}", cache.name(), if icount { "icount" } else { "tcg" }));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut config = VmConfig::new(arch, image);
    config.accel = Accel::Tcg;
    config.icount = icount;
    // ramfs holds the file in guest RAM; virtio-fs needs none of it.
    config.memory = format!("{}M", options.file_mib + options.file_mib / 8 + 128);
    let args: Vec<String> = ["--file-mib", &options.file_mib.to_string(), "--files", &options.files.to_string(), "--virtiofs", TAG, "--seed"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Under icount (sleep=off) a guest that halts while virtiofsd works has its clock jump to
    // its next timer deadline at once: the reply timeout would always fire. Without one, no
    // timer is armed while the guest waits and its clock stands still until the reply's
    // interrupt: the ticks stay pure guest instructions.
    config.cmdline = qemu::kernel_cmdline(if icount { "virtiofs_timeout=0" } else { "" }, &args);
    config.timeout = Duration::from_secs(1800);
    config.shares = vec![Share { cache, ..Share::new(dir.clone(), TAG) }];
    eprintln!(
        "==> fsbench on virtio-fs (--cache={}) and ramfs, {} MiB file, {} files, {}",
        cache.name(),
        options.file_mib,
        options.files,
        if icount { "icount" } else { "plain TCG" }
    );
    let outcome = qemu::run(&config, false)?;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome.exit != Exit::Code(0) || !outcome.console.contains("[fsbench] done") {
        return Err(format!("fsbench ended with {:?}:\n{}\n{}", outcome.exit, outcome.console, outcome.stderr).into());
    }
    let hz = counter_hz(&outcome.console).ok_or("no counter-hz line")?;
    Ok((outcome.console, hz))
}

/// `fs_tmpfs` in the Linux guest on a fresh share with `cache`: the `[bench]` counters, per
/// workload name (`create`, ...) as (ops, cpu_ns, ticks).
fn linux_boot(options: &Options, cache: Cache, share_root: &std::path::Path) -> Result<BTreeMap<String, (u64, u64, u64)>> {
    let share = Share { cache, ..Share::new(share_root.join(format!("{}-linux", cache.name())), TAG) };
    linux_fs_tmpfs(options.file_mib, options.files, share, "", false)
}

/// `fs_tmpfs FILE_MIB FILES /mnt [reread]` in the Linux guest (q35, icount) on `share` (its
/// directory made afresh and removed after), mounted at `/mnt` with `mount_options` (e.g.
/// `dax=always`; empty: none): the `[bench]` counters, per workload name, as (ops, cpu_ns,
/// ticks).
pub(super) fn linux_fs_tmpfs(
    file_mib: u64,
    files: u64,
    share: Share,
    mount_options: &str,
    reread: bool,
) -> Result<BTreeMap<String, (u64, u64, u64)>> {
    let guest = LinuxGuest::build(Arch::X86_64)?;
    let dir = share.dir.clone();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let modules = guest.modules_for(&[guest.virtio_transport(), "virtiofs"])?;
    let mut args = vec![file_mib.to_string(), files.to_string(), "/mnt".to_string()];
    if reread {
        args.push("reread".into());
    }
    let options = if mount_options.is_empty() { String::new() } else { format!(":{mount_options}") };
    let mut config = guest.config("fs_tmpfs", &args, &modules, &format!("bench.mounts=virtiofs:{}:/mnt{options}", share.tag));
    config.icount = true;
    config.memory = "512M".into();
    config.timeout = Duration::from_secs(1800);
    eprintln!(
        "==> Linux guest: fs_tmpfs on virtio-fs (--cache={}{}), icount",
        share.cache.name(),
        share.dax.map(|w| format!(", a {} MiB DAX window, -o {mount_options}", w >> 20)).unwrap_or_default()
    );
    config.shares = vec![share];
    let outcome = qemu::run(&config, false)?;
    let _ = std::fs::remove_dir_all(&dir);
    check_run("fs_tmpfs on virtio-fs", &outcome)?;
    // A mount that failed, or that silently dropped its options (Linux mounts virtio-fs without
    // DAX when the device has no window), would measure something else.
    let mounted = outcome.console.lines().find(|l| l.starts_with("[bench] mounted ")).unwrap_or_default();
    if !mounted.contains(" virtiofs ") || mount_options.split(',').any(|o| !o.is_empty() && !mounted.contains(o)) {
        return Err(format!("the share is not mounted as asked (-o {mount_options}): `{mounted}`\n{}", outcome.console).into());
    }
    let counters = bench_counters(&outcome.console);
    let mut out = BTreeMap::new();
    for (key, &ops) in counters.iter().filter(|(k, _)| k.ends_with(".ops")) {
        let name = key.trim_end_matches(".ops");
        let get = |what: &str| counters.get(&format!("{name}.{what}")).copied();
        if let (Some(cpu), Some(ticks)) = (get("cpu_ns"), get("ticks")) {
            out.insert(name.to_string(), (ops, cpu, ticks));
        }
    }
    if out.is_empty() {
        return Err(format!("fs_tmpfs printed no workloads:\n{}", outcome.console).into());
    }
    Ok(out)
}

fn per_op(total: u64, ops: u64) -> f64 {
    total as f64 / ops.max(1) as f64
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    if args.iter().any(|a| a == "--dax") {
        return super::virtiofs_dax::run(args);
    }
    // The seed workload: a 1 GiB file, ten files of a tenth of it, 10 000 files of metadata.
    let mut options = Options { file_mib: 1024, files: 10_000, linux: true };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--file-mib" => options.file_mib = args.next().ok_or("--file-mib needs a number")?.parse()?,
            "--files" => options.files = args.next().ok_or("--files needs a number")?.parse()?,
            "--no-linux" => options.linux = false,
            other => return Err(format!("unknown option `{other}` for bench virtiofs (expected --file-mib N, --files N, --no-linux)").into()),
        }
    }
    if options.file_mib < 10 {
        return Err("--file-mib must be at least 10 (the ten-file workload reads 1 MiB pieces)".into());
    }
    // A fresh directory on the host's tmpfs with an unpredictable name (not a fixed path that
    // another user could have put a symlink at); removed when `share_root` is dropped.
    let share_root = tempfile::Builder::new().prefix("libos-bench-virtiofs-").tempdir_in("/dev/shm")?;
    measure_all(&options, share_root.path())
}

fn measure_all(options: &Options, share_root: &std::path::Path) -> Result<i32> {
    let mut policies = Vec::new();
    let mut md_rows = String::new();
    let mut plot_bars = Vec::new();
    let mut target_lines = Vec::new();
    for cache in [Cache::Never, Cache::Auto] {
        let (icount_console, icount_hz) = boot(options, cache, true, share_root)?;
        let (tcg_console, tcg_hz) = boot(options, cache, false, share_root)?;
        let linux = if options.linux { Some(linux_boot(options, cache, share_root)?) } else { None };
        let ticks_are_instructions = icount_hz.abs_diff(1_000_000_000) < 10_000_000;
        let icount_runs = parse(&icount_console);
        let tcg_runs = parse(&tcg_console);
        let mut workloads = Vec::new();
        for (name, w) in &icount_runs {
            let Some(short) = name.strip_prefix("virtiofs/") else { continue };
            let ramfs = icount_runs.get(&format!("ramfs/{short}"));
            let f = |k: &str| w.fuse.get(k).copied().unwrap_or(0);
            // With interrupts the guest halts while it waits and its clock stands still (see
            // `boot`): every tick is an instruction, interrupt handling included. A polling
            // device spins meanwhile: its wait is the polling loop, not work per operation.
            let polled = f("interrupts") == 0 && f("requests") > 0;
            let own = if polled { w.ticks.saturating_sub(f("wait-ns")) } else { w.ticks };
            let mib_s = |runs: &BTreeMap<String, Workload>, key: &str| {
                runs.get(key).filter(|t| t.bytes > 0 && t.ticks > 0).map(|t| {
                    let secs = t.ticks as f64 / tcg_hz as f64;
                    (t.bytes as f64 / f64::from(1 << 20) / secs * 10.0).round() / 10.0
                })
            };
            let row = json!({
                "workload": short,
                "ops": w.ops,
                "bytes": w.bytes,
                "guest_instructions_per_op": per_op(own, w.ops).round(),
                "counter_ticks_per_op": per_op(w.ticks, w.ops).round(),
                "fuse_requests_per_op": per_op(f("requests"), w.ops),
                "lookups_per_op": per_op(f("lookups"), w.ops),
                "getattrs_per_op": per_op(f("getattrs"), w.ops),
                "fuse_bytes_per_op": per_op(f("read-bytes") + f("written-bytes"), w.ops),
                "notifications_per_op": per_op(f("notifications"), w.ops),
                "interrupts_per_op": per_op(f("interrupts"), w.ops),
                "forget_messages": f("forget-messages"),
                "ramfs_guest_instructions_per_op": ramfs.map(|r| per_op(r.ticks, r.ops).round()),
                "linux_guest_instructions_per_op": linux.as_ref().and_then(|l| l.get(short)).map(|&(ops, cpu, _)| per_op(cpu, ops).round()),
                "linux_ticks_per_op_including_idle": linux.as_ref().and_then(|l| l.get(short)).map(|&(ops, _, ticks)| per_op(ticks, ops).round()),
                "tcg_mib_per_s": mib_s(&tcg_runs, name),
                "ramfs_tcg_mib_per_s": mib_s(&tcg_runs, &format!("ramfs/{short}")),
            });
            let num = |k: &str| row[k].as_f64();
            let show = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
            let ratio = num("guest_instructions_per_op").zip(num("linux_guest_instructions_per_op")).map(|(g, l)| l / g.max(1.0));
            md_rows += &format!(
                "| {} | {short} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cache.name(),
                show(num("guest_instructions_per_op"), 0),
                show(num("linux_guest_instructions_per_op"), 0),
                show(ratio, 2),
                show(num("ramfs_guest_instructions_per_op"), 0),
                show(num("fuse_requests_per_op"), 2),
                show(num("fuse_bytes_per_op"), 0),
                show(num("notifications_per_op"), 2),
                show(num("interrupts_per_op"), 2),
                show(num("counter_ticks_per_op"), 0),
                show(num("tcg_mib_per_s"), 1),
                show(num("ramfs_tcg_mib_per_s"), 1),
            );
            if short == "seq-read-1m" {
                let requests = num("fuse_requests_per_op").unwrap_or(f64::NAN);
                let notifications = num("notifications_per_op").unwrap_or(f64::NAN);
                let interrupts = num("interrupts_per_op").unwrap_or(f64::NAN);
                let vs_linux = match ratio {
                    Some(r) => format!(
                        "Linux {} : {r:.2}x fewer (target >= 1.5x: {})",
                        show(num("linux_guest_instructions_per_op"), 0),
                        if r >= 1.5 { "met" } else { "missed" }
                    ),
                    None => "Linux not measured".to_string(),
                };
                target_lines.push(format!(
                    "- `--cache={}`, per 1 MiB sequential read: {requests} FUSE request (target 1: {}), {notifications} notifications \
                     (target <= 1: {}), {interrupts} interrupts (target <= 1: {}), {} guest instructions ({vs_linux})",
                    cache.name(),
                    if requests == 1.0 { "met" } else { "missed" },
                    if notifications <= 1.0 { "met" } else { "missed" },
                    match interrupts {
                        0.0 => "not checked: the device polled",
                        i if i <= 1.0 => "met",
                        _ => "missed",
                    },
                    show(num("guest_instructions_per_op"), 0),
                ));
                if let Some(l) = num("linux_guest_instructions_per_op") {
                    plot_bars.push((format!("Linux virtio-fs {} seq-read-1m", cache.name()), l));
                }
                plot_bars.push((format!("virtio-fs {} seq-read-1m", cache.name()), num("guest_instructions_per_op").unwrap_or(0.0)));
                if cache == Cache::Auto {
                    plot_bars.push(("ramfs seq-read-1m".to_string(), num("ramfs_guest_instructions_per_op").unwrap_or(0.0)));
                }
            }
            workloads.push(row);
        }
        policies.push(json!({
            "cache": cache.name(),
            "counter_hz_under_icount": icount_hz,
            "ticks_are_instructions": ticks_are_instructions,
            "tcg_counter_hz": tcg_hz,
            "workloads": workloads,
        }));
    }
    let json = json!({
        "suite": "virtiofs",
        "arch": "x86_64",
        "host": host_facts(),
        "machine": "QEMU microvm, virtio-mmio (vhost-user-fs-device), 1 vCPU, TCG",
        "share": "a fresh directory under /dev/shm (host tmpfs), one virtiofsd 1.14 per boot (--sandbox namespace where the host allows it)",
        "method": "icount boot (sleep=off, virtiofs_timeout=0): fsbench counter ticks per workload (1 tick = 1 guest \
                   instruction; the clock stands still while the guest halts for a reply) = guest instructions, minus the \
                   device's wait time only where it polls; FUSE requests/bytes from VirtioFs::stats, notifications/interrupts \
                   from the device's counters; MiB/s from a plain TCG boot",
        "file_mib": options.file_mib,
        "files": options.files,
        "policies": policies,
        "linux_baseline": if options.linux { "bench/c/fs_tmpfs.c in the share at /mnt, Linux guest q35 virtio-pci, icount, thread CPU time" } else { "not run (--no-linux)" },
        "targets": TARGETS,
    });
    let mut md = String::new();
    md += "# virtio-fs benchmark (`./x bench virtiofs`)\n\n";
    md += &format!(
        "x86_64, `fsbench --virtiofs` on QEMU microvm (virtio-mmio), TCG. Each boot runs every workload on a virtio-fs \
         share (a fresh directory on the host's tmpfs, one virtiofsd 1.14) and then on the root ramfs. {} MiB file, \
         {} files for create/stat/unlink, ten files of {} MiB each.\n\n",
        options.file_mib,
        options.files,
        options.file_mib / 10
    );
    md += "**Guest instructions** (icount, `sleep=off`, no reply timeout: the device completes requests by interrupt and \
           the guest's clock stands still while it halts for virtiofsd, so counter ticks are instructions, interrupt \
           handling included; a device that polls would show its polling loop in `counter ticks` and have it subtracted \
           from the instructions). **Requests, bytes, notifications, interrupts**: guest-side counters of the mount and the \
           device, per operation. **MiB/s**: plain TCG, one boot, wall clock of this 2-core host: indicative only.\n\n";
    md += "**Linux**: the Linux guest baseline (q35, virtio-pci, Debian cloud kernel, `virtiofs` module) running \
           `bench/c/fs_tmpfs.c` in the same kind of share: its thread's CPU time under icount (instructions run for it, \
           without the idle time while it waits; interrupt work done while idle is not counted). `-`: not measured \
           (the C program has the base workloads only) or `--no-linux`.\n\n";
    md += "| virtiofsd --cache | workload | libos instructions / op | Linux instructions / op | Linux / libos | ramfs instructions / op | FUSE requests / op | FUSE bytes / op | notifications / op | interrupts / op | counter ticks / op | MiB/s (TCG) | ramfs MiB/s (TCG) |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    md += &md_rows;
    md += &format!("\nTargets ({TARGETS}):\n\n{}\n", target_lines.join("\n"));

    let plot = crate::measure::bar_chart_svg("virtio-fs vs ramfs: 1 MiB sequential read", "guest instructions per read", &plot_bars);
    crate::measure::write_results("virtiofs", &json, &md, &[("virtiofs.svg".to_string(), plot)])?;
    print!("{md}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fsbench_pass_lines() {
        let console = "[fsbench] counter-hz 1000000000\n\
            [fsbench] virtiofs/seq-read-1m ops=64 bytes=67108864 ticks=1000\n\
            [fsbench] virtiofs/seq-read-1m fuse requests=64 lookups=0 notifications=64 wait-ns=300\n\
            [fsbench] ramfs/seq-read-1m ops=64 bytes=67108864 ticks=500\n\
            [fsbench] create ops=1 bytes=0 ticks=1\nnoise\n[fsbench] done\n";
        let runs = parse(console);
        assert_eq!(runs.len(), 2);
        let v = &runs["virtiofs/seq-read-1m"];
        assert_eq!((v.ops, v.bytes, v.ticks), (64, 67108864, 1000));
        assert_eq!(v.fuse["requests"], 64);
        assert_eq!(v.fuse["wait-ns"], 300);
        assert!(runs["ramfs/seq-read-1m"].fuse.is_empty());
        assert_eq!(counter_hz(console), Some(1_000_000_000));
    }
}
