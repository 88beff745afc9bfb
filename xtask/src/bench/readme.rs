//! `bench/results/README.md`: the one page a visitor reads, written by `./x bench all` from the
//! suites' JSON files (what was measured, how, on what, and the ratios).

use super::results_dir;
use crate::Result;
use crate::measure::format_figure;
use serde_json::Value;
use std::time::Duration;

fn read(name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(results_dir().ok()?.join(name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The number at `path` (`a.b.0.c`: keys, and indices into arrays).
fn at(json: &Value, path: &str) -> Option<f64> {
    path.split('.')
        .try_fold(json, |v, k| match v {
            Value::Array(items) => items.get(k.parse::<usize>().ok()?),
            _ => v.get(k),
        })
        .and_then(Value::as_f64)
}

fn cell(json: &Value, path: &str) -> String {
    at(json, path).map_or("-".into(), format_figure)
}

/// Writes the page; `took` is how long the whole `./x bench all` ran (`None` when only the page
/// is rewritten, by `./x bench readme`).
pub(super) fn write(took: Option<Duration>) -> Result<()> {
    let boot = read("boot.json");
    let linux = read("linux.json");
    let host = boot.as_ref().or(linux.as_ref()).map(|j| j["host"].clone()).unwrap_or(Value::Null);
    let mut md = String::from("# Benchmark results\n\n");
    md += "Written by `./x bench all`. Every figure compares libos with something measured on the same QEMU in the same run.\n\n";
    md += &format!(
        "**Machine:** {} ({} cores), {}, commit {}. **Accelerator: TCG** for every figure (this host's KVM is a software-nested module, slower than TCG; `./x` checks with a calibration boot).{}\n\n",
        host["cpu"].as_str().unwrap_or("?"),
        host["cores"],
        host["qemu"].as_str().unwrap_or("?"),
        host["commit"].as_str().unwrap_or("?"),
        took.map_or(String::new(), |t| format!(" The whole `./x bench all` took {:.0} s.", t.as_secs_f64()))
    );
    md += "## How\n\n";
    md += "- **Instructions** are exact: QEMU runs with `-icount shift=0,sleep=off`, so a guest clock backed by QEMU's virtual clock ticks once per guest instruction (x86_64 TSC: 1 tick = 1 instruction; aarch64 CNTVCT at 62.5 MHz: 1 tick = 16 instructions). Every such figure comes from two runs checked to agree within 0.1%. While a guest idles, QEMU skips virtual time to the next timer, so for I/O workloads the tick figures are labelled *virtual ns* (instructions + skipped idle), not instructions.\n";
    md += "- **Device traffic** comes from QEMU trace events (`memory_region_ops_read/write` by device region, `virtio_queue_notify`, `virtqueue_pop`, `virtio_notify`, APIC/IOAPIC/PIC/GIC/ITS injection). Under KVM each MMIO/PIO access and each notification is a VM exit, so *exits* = guest MMIO/PIO accesses + virtio notifications (QEMU serves notifications through an ioeventfd, invisible to the MMIO trace). Per-operation counts cover only the window between the program's `[bench] mark start` and `[bench] mark end` console lines, found again in the trace, divided by the operation count. Timer interrupts inside the window are included, so these counts repeat closely but not exactly; ICMP counts come from one icount run per size (the host's packet timing is not repeatable anyway).\n";
    md += "- **Wall time** is secondary: whole-QEMU-process medians of >= 5 interleaved runs, always a ratio against a baseline timed in the same invocation, labelled TCG.\n";
    md += "- The **Linux guest** is Debian's cloud kernel with a busybox initramfs running static musl C programs from `bench/c/`, built by `./x` from Debian packages (`target/linux-baseline/`). Exact QEMU commands and kernel command lines are in `linux.md`.\n\n";
    md += "## Headline figures\n\n| figure | x86_64 | aarch64 |\n|---|---|---|\n";
    if let Some(boot) = &boot {
        md += &format!("| libos `hello`: instructions, entry to `main` | {} | {} |\n", cell(boot, "instructions.entry_to_main"), cell(boot, "aarch64.instructions.entry_to_main"));
        md += &format!("| libos `hello`: wall / floor kernel (TCG) | {}x | {}x |\n", cell(boot, "wall.ratio_of_medians"), cell(boot, "aarch64.wall.ratio_of_medians"));
        md += &format!("| libos `hello`: image bytes | {} | {} |\n", cell(boot, "image.file_bytes"), cell(boot, "aarch64.image.file_bytes"));
    }
    if let Some(linux) = &linux {
        let row = |label: &str, path: &str| format!("| {label} | {} | {} |\n", cell(linux, &format!("arches.x86_64.workloads.{path}")), cell(linux, &format!("arches.aarch64.workloads.{path}")));
        md += &row("Linux boot: wall / libos `hello` wall (TCG, ratio)", "boot.wall.ratio_linux_over_libos");
        md += &row("Linux: instructions `main` to exit of a one-line program", "boot.instructions_main_to_exit");
        md += &row("Linux: device accesses (MMIO/PIO) during the whole boot", "boot.device_whole_boot.total device accesses");
        md += &row("Linux: instructions per `getppid` system call", "syscall.instructions_per_operation");
        md += &row("Linux: exits (MMIO/PIO + virtio notifications) per 512-byte virtio-blk read", "block.device_per_read.total exits");
        md += &row("Linux: interrupts injected per 512-byte read", "block.device_per_read.total interrupts injected");
        md += &row("Linux: wall µs per 512-byte read (TCG)", "block.wall.us_per_read");
        for (i, size) in super::icmp::PAYLOAD_SIZES.iter().enumerate() {
            md += &row(&format!("Linux: {size}-byte ICMP echo, packets/s (TCG)"), &format!("icmp.sizes.{i}.pps"));
            md += &row(&format!("Linux: {size}-byte ICMP echo, exits per packet"), &format!("icmp.sizes.{i}.device_per_packet.total exits"));
        }
        for arch in ["x86_64", "aarch64"] {
            for failure in linux["arches"][arch]["failed"].as_array().into_iter().flatten() {
                md += &format!("\n**{arch} Linux {} failed**; see `linux.md`.\n", failure["workload"].as_str().unwrap_or("?"));
            }
        }
    }
    md += "\nICMP packets/s: median of 5 `ping -f` floods of 2 000 requests per size in one boot (min and max in `linux.json`); with one flood they moved by up to 70% between two runs on this shared host.\n";
    md += "\nThe libos side of the block workload is in the next table (`block.md`); the ICMP workload's is below (`net.md`).\n\n";
    md += &block();
    md += &network();
    md += &servers();
    md += &file_systems();
    md += &other_suites();
    md += "## Files\n\n- `boot.md`, `boot.json`: libos boot suite (`./x bench boot`).\n- `fs.md`, `fs.json`: ramfs through `libos::fs` and the same workload on Linux tmpfs (`./x bench fs`).\n- `sched.md`, `sched.json`: threads and schedulers (`./x bench sched`).\n- `shim.md`, `shim.json`: C programs through posix-shim vs the Linux guest (`./x bench shim`).\n- `smp.md`, `smp.json`: a CPU-bound C job on 2 vCPUs against 1, libos and the Linux guest, and cross-CPU wake-up and lock costs (`./x bench smp`).\n- `process.md`, `process.json`: fork + exit + wait and a pipe between two processes, each process a VM on libos, vs the Linux guest (`./x bench process`).\n- `virtiofs.md`, `virtiofs.json`, `virtiofs.svg`: virtio-fs vs ramfs vs the Linux guest on the same share (`./x bench virtiofs`).\n- `virtiofs-dax.md`, `virtiofs-dax.json`: reads through a virtio-fs DAX window vs READ requests vs ramfs vs the Linux guest with `-o dax=always` (`./x bench virtiofs --dax`).\n- `net.md`, `net.json`: network stack, ICMP echo and TCP (netecho and the C server tcp_bench.c through posix-shim) vs the Linux guest, and TCP round trips against open connections (`./x bench net`).\n- `servers.md`, `servers.json`: a real server with its own benchmark tool, redis-server with redis-benchmark, on libos and in the Linux guest (`./x bench servers`).\n- `block.md`, `block.json`: the seed's 512-byte `O_DIRECT` reads of a virtio-blk disk, libos vs the Linux guest (`./x bench block`).\n- `fs-compare.md`, `fs-compare.json`: one C program on libos ramfs, ext2 on virtio-blk and virtio-fs and on the Linux guest's tmpfs, ext2 and virtio-fs (`./x bench fs`).\n- `linux.md`, `linux.json`, `linux-boot-wall-ratio.svg`: Linux guest baseline (`./x bench linux`).\n- `*.prev.json`: the previous results; `./x bench --compare` lists every change.\n";
    md += "\n![libos boot](boot-wall-ratio.svg)\n\n![Linux boot](linux-boot-wall-ratio.svg)\n";
    std::fs::write(results_dir()?.join("README.md"), md)?;
    eprintln!("==> wrote bench/results/README.md");
    Ok(())
}

/// Three table cells: libos's figure, Linux's, and their ratio ("-" where one is missing).
fn compared(us: Option<f64>, them: Option<f64>) -> String {
    let show = |v: Option<f64>| v.map_or("-".into(), format_figure);
    let ratio = match (us, them) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    format!("{} | {} | {ratio}", show(us), show(them))
}

/// The network suite's headline: ICMP echo and the TCP workloads against the Linux guest, and
/// the cost per round trip against open connections.
fn network() -> String {
    let Some(net) = read("net.json") else { return String::new() };
    let mut md = String::from("## libos network (`./x bench net`, icount, same card and run as the Linux guest)\n\n| arch | figure | libos | Linux | libos / Linux |\n|---|---|---|---|---|\n");
    for arch in net["arches"].as_array().into_iter().flatten() {
        let name = arch["arch"].as_str().unwrap_or("?");
        for (i, size) in super::icmp::PAYLOAD_SIZES.iter().enumerate() {
            for (label, path) in [("virtual ns per echo", "virtual_ns_per_packet"), ("exits per echo", "device_per_packet.total exits")] {
                let us = at(&arch["libos"], &format!("sizes.{i}.{path}"));
                let them = at(&arch["linux"], &format!("sizes.{i}.{path}"));
                md += &format!("| {name} | {size}-byte ICMP echo: {label} | {} |\n", compared(us, them));
            }
        }
        let tcp = &arch["tcp"];
        for (i, workload) in tcp["libos"]["workloads"].as_array().into_iter().flatten().enumerate() {
            let unit = workload["figures"]["unit"].as_str().unwrap_or("operation");
            let mode = workload["workload"].as_str().unwrap_or("?");
            for (label, path) in [("busy instructions", "busy_instructions_per_operation"), ("exits", "device_per_operation.total exits")] {
                let us = at(workload, &format!("figures.{path}"));
                let them = at(&tcp["linux"], &format!("workloads.{i}.figures.{path}"));
                md += &format!("| {name} | TCP {mode}: {label} per {unit} | {} |\n", compared(us, them));
            }
        }
        // The C server (tcp_bench.c through posix-shim) against the same Linux figures.
        let linux_workloads = tcp["linux"]["workloads"].as_array().cloned().unwrap_or_default();
        for workload in arch["tcp_c"]["libos"]["workloads"].as_array().into_iter().flatten() {
            let unit = workload["figures"]["unit"].as_str().unwrap_or("operation");
            let mode = workload["workload"].as_str().unwrap_or("?");
            let linux = linux_workloads.iter().find(|w| w["workload"] == workload["workload"]);
            for (label, path) in [("busy instructions", "busy_instructions_per_operation"), ("exits", "device_per_operation.total exits")] {
                let us = at(workload, &format!("figures.{path}"));
                let them = linux.and_then(|w| at(w, &format!("figures.{path}")));
                md += &format!("| {name} | TCP {mode}, C server (tcp_bench.c via posix-shim): {label} per {unit} | {} |\n", compared(us, them));
            }
        }
        for row in arch["tcp_round_trips_by_open_connections"].as_array().into_iter().flatten() {
            md += &format!(
                "| {name} | TCP 1-byte round trip with {} open connections: busy instructions (cost vs 1 connection) | {} ({}x) | - | - |\n",
                row["connections"], row["busy_instructions_per_round_trip"], row["cost_vs_one_connection"]
            );
        }
    }
    md + "\n"
}

/// The real-server suite's headline: redis-benchmark against the same redis on libos and on
/// Linux, per request.
fn servers() -> String {
    let Some(servers) = read("servers.json") else { return String::new() };
    let mut md = format!(
        "## Real server (`./x bench servers`: redis-server with the host's redis-benchmark, {} requests per test, one connection; same file, card and run as the Linux guest)\n\n| arch | figure | libos | Linux | libos / Linux |\n|---|---|---|---|---|\n",
        servers["requests_per_test"]
    );
    for arch in servers["arches"].as_array().into_iter().flatten() {
        let name = arch["arch"].as_str().unwrap_or("?");
        let theirs = arch["linux"]["tests"].as_array().cloned().unwrap_or_default();
        for test in arch["libos"]["tests"].as_array().into_iter().flatten() {
            let request = test["test"].as_str().unwrap_or("?");
            let linux = theirs.iter().find(|t| t["test"] == test["test"]);
            for (label, path) in [
                ("instructions per request (icount)", "instructions_per_request"),
                ("exits per request", "device_per_request.total exits"),
                ("requests/s (TCG wall)", "tcg_wall.rps"),
            ] {
                md += &format!("| {name} | redis {request}: {label} | {} |\n", compared(at(test, path), linux.and_then(|t| at(t, path))));
            }
        }
    }
    md + "\n"
}

/// The block suite's headline: per 512-byte read, libos against the Linux guest.
fn block() -> String {
    let Some(block) = read("block.json") else { return String::new() };
    let mut md = String::from("## Block device (`./x bench block`: `bench/c/block_read.c`, 512-byte `O_DIRECT` reads of a virtio-blk disk (x86_64: PCI, aarch64: MMIO), same file on both systems)\n\n| arch | per read | libos | Linux | libos / Linux |\n|---|---|---|---|---|\n");
    for (arch, figures) in block["arches"].as_object().into_iter().flatten() {
        for (label, path) in [
            ("busy instructions (icount, idle subtracted)", "busy_instructions_per_read"),
            ("exits (MMIO/PIO + notifications)", "device_per_read.total exits"),
            ("interrupts injected", "device_per_read.total interrupts injected"),
            ("wall µs (TCG)", "wall.us_per_read"),
        ] {
            md += &format!("| {arch} | {label} | {} |\n", compared(at(&figures["libos"], path), at(&figures["linux"], path)));
        }
    }
    md + "\n"
}

/// The file-system comparison's headline: instructions per operation of one program on each
/// file system of both systems.
fn file_systems() -> String {
    let Some(compare) = read("fs-compare.json") else { return String::new() };
    let columns = ["libos ramfs", "libos ext2", "libos virtio-fs", "Linux tmpfs", "Linux ext2", "Linux virtio-fs"];
    let mut md = format!(
        "## File systems side by side (`./x bench fs`: `bench/c/fs_tmpfs.c`, {} files, {} MiB file, x86_64; instructions per operation)\n\n| workload | {} |\n|---|{}\n",
        compare["files"],
        compare["file_mib"],
        columns.join(" | "),
        "---|".repeat(columns.len())
    );
    let workloads: Vec<String> = compare["systems"]["libos ramfs"]["workloads"].as_object().map(|w| w.keys().cloned().collect()).unwrap_or_default();
    for workload in workloads {
        let cells: Vec<String> = columns.iter().map(|c| cell(&compare["systems"][c], &format!("workloads.{workload}.instructions_per_op"))).collect();
        md += &format!("| {workload} | {} |\n", cells.join(" | "));
    }
    md + "\n"
}

/// The libos suites outside the Linux baseline table (fs, with its own Linux tmpfs run; sched): their headline figures.
fn other_suites() -> String {
    let read = |name: &str| -> Option<Value> {
        let text = std::fs::read_to_string(results_dir().ok()?.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let mut md = String::new();
    if let Some(fs) = read("fs.json") {
        md += "## libos file system (ramfs vs Linux tmpfs, x86_64, guest instructions per operation)\n\n| workload | ramfs instructions/op | Linux tmpfs instructions/op | ramfs instructions/byte | Linux instructions/byte |\n|---|---|---|---|---|\n";
        let byte = |v: &Value| v.as_f64().map_or("-".to_string(), |b| format!("{b:.3}"));
        let op = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.0}"));
        for w in fs["workloads"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} | {} | {} | {} |\n",
                w["name"].as_str().unwrap_or("?"),
                op(&w["instructions_per_op"]),
                op(&w["linux_tmpfs_instructions_per_op"]),
                byte(&w["instructions_per_byte"]),
                byte(&w["linux_tmpfs_instructions_per_byte"])
            );
        }
        md += &format!(
            "| create+stat+unlink cycle | {} | {} | - | - |\n\nTargets: cycle <= 1/3 of Linux met: {}; sequential reads <= Linux per byte met: {}.\n\n",
            op(&fs["create_stat_unlink_cycle_instructions"]),
            op(&fs["linux_baseline"]["create_stat_unlink_cycle_instructions"]),
            fs["targets"]["cycle_met"],
            fs["targets"]["sequential_reads_met"]
        );
    }
    if let Some(sched) = read("sched.json") {
        md += "## libos threads (guest instructions)\n\n| arch | policy | per yield switch | per spawn+join | timer interrupts in a 1 s idle sleep |\n|---|---|---|---|---|\n";
        for r in sched["results"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} | {} | {} | {} |\n",
                r["arch"].as_str().unwrap_or("?"),
                r["policy"].as_str().unwrap_or("?"),
                r["instructions_per_yield_switch"],
                r["instructions_per_spawn_join"],
                r["timer_interrupts_idle_1s"]
            );
        }
        md += "\n";
    }
    if let Some(smp) = read("smp.json") {
        md += "## Several CPUs (`./x bench smp`)\n\nSpeedup of 2 vCPUs over 1 (TCG wall clock, multi-threaded TCG; median of per-round ratios) for a CPU-bound C job over 2 threads (`parallel_sum`) and an allocation-heavy Rust job with the heap's per-CPU caches on and off (`threads bench-alloc-parallel`):\n\n| arch | job | system | 1 vCPU, ms | 2 vCPUs, ms | speedup |\n|---|---|---|---|---|---|\n";
        for r in smp["results"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r["arch"].as_str().unwrap_or("?"),
                r["job"].as_str().unwrap_or("parallel_sum"),
                r["system"].as_str().unwrap_or("?"),
                r["wall_ms_1_vcpu"]["median"],
                r["wall_ms_2_vcpus"]["median"],
                r["speedup"]
            );
        }
        md += "\nUnder icount with 2 vCPUs (guest instructions, both CPUs):\n\n| arch | per cross-CPU wake-up | per uncontended lock + unlock | per allocation + free: per-CPU caches / one lock |\n|---|---|---|---|\n";
        for r in smp["icount"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} | {} | {} / {} |\n",
                r["arch"].as_str().unwrap_or("?"),
                r["instructions_per_cross_cpu_wakeup"],
                r["instructions_per_uncontended_lock_unlock"],
                r["instructions_per_alloc_free_cached"],
                r["instructions_per_alloc_free_one_lock"]
            );
        }
        md += "\nTarget: libos speedup >= 1.7 (TCG wall clock on a shared 2-core host: noisy, see smp.md).\n\n";
    }
    if let Some(process) = read("process.json") {
        md += "## Processes, each a VM (`./x bench process`)\n\n`bench/c/process_ops.c` on libos (every process a VM; a fork is a QEMU migration to a file and a new QEMU) and in the Linux guest; TCG wall clock, medians, and guest instructions (icount, summed over the VMs on libos) and exits:\n\n| arch | system | fork+exit+wait, ms | host: saved / child running, ms | pipe, MiB/s | instructions per fork | instructions per MiB of pipe | exits per MiB of pipe |\n|---|---|---|---|---|---|---|---|\n";
        for r in process["results"].as_array().into_iter().flatten() {
            let host = if r["host_fork_saved_ms_median"].is_null() {
                "-".to_string()
            } else {
                format!("{} / {}", r["host_fork_saved_ms_median"], r["host_fork_child_running_ms_median"])
            };
            let figure = |key: &str| r[key].as_f64().map_or("-".to_string(), |v| format!("{v:.0}"));
            md += &format!(
                "| {} | {} | {} | {host} | {} | {} | {} | {} |\n",
                r["arch"].as_str().unwrap_or("?"),
                r["system"].as_str().unwrap_or("?"),
                r["fork_wait_ms_median"],
                r["pipe_mib_per_s"],
                figure("instructions_fork_total"),
                figure("instructions_pipe_total_per_mib"),
                r["exits_pipe_per_mib"].as_f64().map_or("-".to_string(), |v| format!("{v:.1}"))
            );
        }
        md += "\n";
    }
    if let Some(shim) = read("shim.json") {
        md += "## C programs through posix-shim (`bench/c/shim_ops.c`, guest instructions per operation)\n\n| arch | null syscall (getppid()): libos / Linux | syscall(SYS_getppid): libos / Linux | 4 KiB pread: libos / Linux | open+fstat+read+close: libos / Linux |\n|---|---|---|---|---|\n";
        let n = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.0}"));
        for r in shim["results"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} / {} | {} / {} | {} / {} | {} / {} |\n",
                r["arch"].as_str().unwrap_or("?"),
                n(&r["libos_getppid"]),
                n(&r["linux_getppid"]),
                n(&r["libos_getppid_syscall"]),
                n(&r["linux_getppid_syscall"]),
                n(&r["libos_pread4k"]),
                n(&r["linux_pread4k"]),
                n(&r["libos_cycle"]),
                n(&r["linux_cycle"])
            );
        }
        md += "\nTargets: null syscall <= 80 instructions; the cycle <= 1/2 of Linux on tmpfs.\n\n";
    }
    if let Some(virtiofs) = read("virtiofs.json") {
        md += &format!(
            "## virtio-fs (x86_64, {} MiB file, guest instructions per operation; details in `virtiofs.md`)\n\n| virtiofsd --cache | workload | libos | Linux guest | ramfs | FUSE requests | notifications | interrupts |\n|---|---|---|---|---|---|---|---|\n",
            virtiofs["file_mib"]
        );
        let n = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.0}"));
        let f = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.2}"));
        for policy in virtiofs["policies"].as_array().into_iter().flatten() {
            for w in policy["workloads"].as_array().into_iter().flatten() {
                if !["seq-read-1m", "seq-write-1m", "seq-read-4k", "stat", "create"].contains(&w["workload"].as_str().unwrap_or("")) {
                    continue;
                }
                md += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    policy["cache"].as_str().unwrap_or("?"),
                    w["workload"].as_str().unwrap_or("?"),
                    n(&w["guest_instructions_per_op"]),
                    n(&w["linux_guest_instructions_per_op"]),
                    n(&w["ramfs_guest_instructions_per_op"]),
                    f(&w["fuse_requests_per_op"]),
                    f(&w["notifications_per_op"]),
                    f(&w["interrupts_per_op"])
                );
            }
        }
        md += "\n";
    }
    if let Some(dax) = read("virtiofs-dax.json") {
        md += &format!(
            "## virtio-fs DAX window (x86_64, {} MiB file, {} MiB window, per MiB read; details in `virtiofs-dax.md`)\n\n| workload | DAX instructions | Linux DAX instructions | READ instructions | ramfs instructions | DAX requests | DAX notifications | DAX daemon µs | READ daemon µs |\n|---|---|---|---|---|---|---|---|---|\n",
            dax["file_mib"],
            dax["window_bytes"].as_u64().unwrap_or(0) >> 20
        );
        let n = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.0}"));
        let f = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{n:.2}"));
        let us = |v: &Value| v.as_f64().map_or("-".to_string(), |n| format!("{:.1}", n / 1000.0));
        for w in dax["workloads"].as_array().into_iter().flatten() {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                w["workload"].as_str().unwrap_or("?"),
                n(&w["dax_guest_instructions_per_mib"]),
                n(&w["linux_dax_guest_instructions_per_mib"]),
                n(&w["read_guest_instructions_per_mib"]),
                n(&w["ramfs_guest_instructions_per_mib"]),
                f(&w["dax_requests_per_mib"]),
                f(&w["dax_notifications_per_mib"]),
                us(&w["dax_daemon_ns_per_mib"]),
                us(&w["read_daemon_ns_per_mib"])
            );
        }
        md += "\n";
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_into_arrays() {
        let json = serde_json::json!({ "a": { "sizes": [{ "pps": 1.5 }, { "pps": 2 }] } });
        assert_eq!(at(&json, "a.sizes.1.pps"), Some(2.0));
        assert_eq!(at(&json, "a.sizes.2.pps"), None);
        assert_eq!(cell(&json, "a.missing"), "-");
    }
}

