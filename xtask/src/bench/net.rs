//! `./x bench net`: the seed-003 ICMP echo workload against libos's network stack, next to the
//! Linux guest answering the same floods in the same run (the machinery of [`super::icmp`]).
//!
//! Per architecture and payload size (1, 512, 1024, 1472 bytes), for each system:
//! - **virtual ns per echo** (headline): QEMU `-icount shift=0,sleep=off`, the guest's counter
//!   from the first echo request to the last / N: guest instructions, plus whatever idle time
//!   QEMU skipped between packets;
//! - **exits per echo**: MMIO/PIO accesses + virtio notifications between the guest's start and
//!   end marks in a QEMU device trace / N (what would exit to the VMM under KVM), and
//!   interrupts injected per echo;
//! - **packets/s** (TCG wall clock, secondary): median of 5 host `ping -f` floods in one boot.
//!
//! Caveat on virtual ns: the host paces this workload, and under `sleep=off` a guest waiting
//! for the next request has its clock jump to its next timer deadline, so the figure counts
//! the guest's timer period as much as its instructions (and a window that starts at the mark
//! rather than at the first request adds the host's start-up). Exits and interrupts per echo
//! do not depend on that and are the steadier figures.
//!
//! The libos guest is `apps/netecho` with `ping-wait N`: it prints `[bench] mark start`, answers
//! echo requests until N were answered, prints `[bench] mark end`, then `[bench] counter-hz:
//! HZ`, `operations: N`, `window-ticks: TICKS` and `idle-ticks: TICKS` (the `[bench] NAME:
//! VALUE` lines of the Linux-guest programs, read by the same [`bench_counters`]), and exits 0.
//! Both guests get the same card on a tap in a namespace made for the run ([`transport`]: PCI
//! on x86_64 `q35`, virtio-mmio on aarch64 `virt` with GICv3), so the comparison is of the
//! stacks, not of the transports. Writes `bench/results/net.{json,md}`.

use super::icmp::{self, PAYLOAD_SIZES, Responder};
use super::{host_facts, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{LinuxGuest, bench_counters};
use crate::measure::{self, failure};
use crate::net::NetConfig;
use crate::netns::{GUEST_IP_OPTION, Netns, TAP};
use crate::qemu::{self, Exit, Machine, Outcome, VirtioTransport, VmConfig};
use crate::{Result, build};
use serde_json::{Value, json};
use std::time::Duration;

/// What a run of the suite does.
#[derive(Clone, Debug, PartialEq)]
struct Options {
    arches: Vec<Arch>,
    /// Echo requests per payload size (per flood).
    pings: u64,
    linux: bool,
    /// Parts of the suite to run: `icmp`, `tcp` (stream and request/response vs Linux),
    /// `scale` (cost per packet against open connections).
    parts: Vec<String>,
    tcp: super::net_tcp::Options,
}

/// Every part of the suite, in the order it runs.
const PARTS: [&str; 4] = ["icmp", "tcp", "tcp-c", "scale"];

impl Options {
    fn parse(args: Vec<String>) -> Result<Options> {
        // As in `./x bench linux`: 2 000 requests per size keep the suite's TCG time bounded
        // (every size floods 5 times plus once under icount, on both systems).
        let mut options = Options {
            arches: Arch::ALL.into_iter().filter(|a| a.is_supported()).collect(),
            pings: 2_000,
            linux: true,
            parts: PARTS.map(String::from).into(),
            tcp: super::net_tcp::Options::default(),
        };
        let positive = |arg: &str, v: String| -> Result<u64> {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{arg} wants a positive number, not `{v}`").into()),
            }
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--arch" => options.arches = Arch::parse_list(&value()?)?,
                "--pings" => options.pings = positive(&arg, value()?)?,
                "--stream-mib" => options.tcp.stream_mib = positive(&arg, value()?)?,
                "--rounds" => options.tcp.rounds = positive(&arg, value()?)?,
                "--no-linux" => options.linux = false,
                "--no-scale" => options.parts.retain(|p| p != "scale"),
                "--only" => {
                    options.parts = value()?.split(',').map(String::from).collect();
                    if let Some(bad) = options.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
                        return Err(format!("--only: unknown part `{bad}` (parts: {})", PARTS.join(", ")).into());
                    }
                }
                other => return Err(format!("unknown option `{other}` for bench net (--arch A|all, --only icmp,tcp,tcp-c,scale, --pings N, --stream-mib N, --rounds N, --no-linux, --no-scale)").into()),
            }
        }
        Ok(options)
    }

    fn wants(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// How both guests' cards attach: modern virtio-net-pci on x86_64 (MSI-X); virtio-mmio v2 on
/// aarch64, because libos has no GICv2m/ITS driver yet and would poll a PCI card every
/// millisecond instead of taking its interrupt.
pub(super) fn transport(arch: Arch) -> VirtioTransport {
    match arch {
        Arch::X86_64 => VirtioTransport::Pci,
        Arch::Aarch64 => VirtioTransport::Mmio,
    }
}

/// The machine both guests run on: libos's PCI machine of the arch, like the Linux baseline.
pub(super) fn machine(arch: Arch) -> Machine {
    match arch {
        Arch::X86_64 => Machine::Q35,
        Arch::Aarch64 => Machine::VirtGicv3,
    }
}

/// A libos run succeeded when `netecho` exited 0.
fn check_libos(what: &str, outcome: &Outcome) -> Result<()> {
    if outcome.exit == Exit::Code(0) { Ok(()) } else { Err(failure(what, outcome)) }
}

/// Measures the libos guest on `arch`.
fn libos(arch: Arch, netns: &Netns, count: u64) -> Result<(Vec<Value>, String)> {
    let image = build::build_app("netecho", arch, true)?;
    let config_for = |n: u64| {
        let mut config = VmConfig::new(arch, image.clone());
        config.accel = Accel::Tcg;
        config.machine = machine(arch);
        config.memory = "256M".into();
        config.cmdline = qemu::kernel_cmdline(GUEST_IP_OPTION, &["ping-wait".into(), n.to_string()]);
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport(arch));
        config.launcher = netns.launcher();
        config.timeout = Duration::from_secs(900);
        config
    };
    let responder =
        Responder { system: "libos", program: "netecho ping-wait", config_for: &config_for, check: check_libos, counters: bench_counters };
    let sizes = icmp::measure_sizes(arch, netns, &responder, count)?;
    Ok((sizes, super::linux::command_line(&config_for(count))))
}

/// The figure at `path` (`a.b`, keys) of a size's JSON.
fn figure(size: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(size, |v, k| v.get(k)).and_then(Value::as_f64)
}

/// The figures of the Markdown table: label and path in a size's JSON.
const FIGURES: [(&str, &str); 5] = [
    ("virtual ns per echo (icount)", "virtual_ns_per_packet"),
    ("busy instructions per echo (icount minus idle; libos only)", "busy_instructions_per_packet"),
    ("exits per echo (MMIO/PIO + virtio notifications)", "device_per_packet.total exits"),
    ("interrupts injected per echo", "device_per_packet.total interrupts injected"),
    ("packets/s (TCG wall, median of 5 floods)", "pps"),
];

/// The per-size results of one arch: libos's, and Linux's when it ran.
type Row = (Arch, Vec<Value>, Option<Vec<Value>>);

/// One table row per arch, size and figure: libos, Linux, libos / Linux.
fn markdown(rows: &[Row], pings: u64) -> String {
    let mut md = String::from("## ICMP echo against the Linux guest\n\n");
    md += &format!(
        "The ICMP echo workload of seed 003 against libos (`apps/netecho ping-wait`) and the Linux guest \
         (`bench/c/icmp_echo.c`) in the same run: the host floods the guest with {pings} echo requests per payload \
         size (`ping -f` from a network namespace over a tap), both guests on the same card (x86_64: modern virtio-net-pci on \
         q35; aarch64: virtio-mmio v2 on virt-gicv3, as libos takes no MSI there yet). Headline: virtual ns per echo under QEMU `-icount shift=0,sleep=off` \
         (guest instructions plus idle time QEMU skipped) and exits per echo from a device trace between the \
         guest's start and end marks. Packets/s are TCG wall-clock figures, secondary. Ratios below 1 favour libos.\n\n\
         Caveat: the host paces the requests, and under `sleep=off` a waiting guest's clock jumps to its next timer, so \
         virtual ns per echo count each guest's timer period and idle policy as much as its instructions; exits and \
         interrupts per echo do not depend on that. For libos the guest also counts the ticks it spent halted \
         (`libos::idle`): busy instructions = window minus idle, the guest's own work whatever timers were pending \
         (the Linux guest has no such counter here).\n\n"
    );
    md += "| arch | payload | figure | libos | Linux | libos / Linux |\n|---|---|---|---|---|---|\n";
    for (arch, ours, theirs) in rows {
        for (i, size) in PAYLOAD_SIZES.iter().enumerate() {
            for (label, path) in FIGURES {
                let us = ours.get(i).and_then(|s| figure(s, path));
                let them = theirs.as_ref().and_then(|t| t.get(i)).and_then(|s| figure(s, path));
                let cell = |v: Option<f64>| v.map_or("-".to_string(), measure::format_figure);
                let ratio = match (us, them) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                    _ => "-".into(),
                };
                md += &format!("| {arch} | {size} B | {label} | {} | {} | {ratio} |\n", cell(us), cell(them));
            }
        }
    }
    md
}

/// libos / Linux per payload size for the ICMP figures compared.
fn icmp_ratios(ours: &[Value], theirs: Option<&Vec<Value>>) -> Vec<Value> {
    ours.iter()
        .enumerate()
        .map(|(i, size)| {
            let ratio = |path: &str| {
                let them = theirs?.get(i).and_then(|s| figure(s, path))?;
                let us = figure(size, path)?;
                (them > 0.0).then(|| round(us / them))
            };
            json!({
                "payload_bytes": PAYLOAD_SIZES[i],
                "virtual_ns_per_echo": ratio("virtual_ns_per_packet"),
                "exits_per_echo": ratio("device_per_packet.total exits"),
                "pps": ratio("pps"),
            })
        })
        .collect()
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let options = Options::parse(args)?;
    crate::linux::ensure_net_tools()?;
    let netns = Netns::create("bench")?;
    let mut rows = Vec::new();
    let mut arches_json = Vec::new();
    let (mut tcp_md, mut tcp_c_md, mut scale_md) = (String::new(), String::new(), String::new());
    for &arch in &options.arches {
        let linux_guest = if options.linux { Some(LinuxGuest::build(arch)?) } else { None };
        let mut entry = json!({ "arch": arch.name() });
        if options.wants("icmp") {
            let (ours, command) = libos(arch, &netns, options.pings)?;
            let theirs = match &linux_guest {
                Some(guest) => Some(icmp::run(guest, options.pings)?),
                None => None,
            };
            let their_sizes = theirs.as_ref().and_then(|t| t["sizes"].as_array().cloned());
            entry["libos"] = json!({ "program": "apps/netecho ping-wait N", "sizes": ours, "qemu_command": command });
            entry["linux"] = theirs.unwrap_or(Value::Null);
            entry["libos_over_linux"] = json!(icmp_ratios(&ours, their_sizes.as_ref()));
            rows.push((arch, ours, their_sizes));
        }
        let mut linux_tcp = None;
        if options.wants("tcp") {
            let ours = super::net_tcp::libos(arch, &netns, &options.tcp)?;
            let theirs = match &linux_guest {
                Some(guest) => Some(super::net_tcp::linux(guest, &netns, &options.tcp)?),
                None => None,
            };
            linux_tcp = theirs.clone();
            tcp_md += &super::net_tcp::markdown(arch, &ours, theirs.as_deref());
            entry["tcp"] = json!({
                "libos": { "program": "apps/netecho bench MODE PORT N", "workloads": ours },
                "linux": theirs.as_ref().map(|t| json!({ "program": "bench/c/tcp_bench.c MODE PORT N", "workloads": t })),
                "libos_over_linux": super::net_tcp::ratios(&ours, theirs.as_deref()),
            });
        }
        if options.wants("tcp-c") {
            let ours = super::net_tcp::libos_c(arch, &netns, &options.tcp)?;
            let theirs = match (&linux_tcp, &linux_guest) {
                (Some(theirs), _) => Some(theirs.clone()),
                (None, Some(guest)) => Some(super::net_tcp::linux(guest, &netns, &options.tcp)?),
                (None, None) => None,
            };
            tcp_c_md += &super::net_tcp::markdown(arch, &ours, theirs.as_deref());
            entry["tcp_c"] = json!({
                "libos": { "program": "bench/c/tcp_bench.c MODE PORT N through posix-shim (elf-runner)", "workloads": ours },
                "libos_over_linux": super::net_tcp::ratios(&ours, theirs.as_deref()),
            });
        }
        if options.wants("scale") {
            let scale = super::net_scale::measure(arch, &netns)?;
            scale_md += &super::net_scale::markdown(arch, &scale);
            entry["tcp_round_trips_by_open_connections"] = json!(scale);
        }
        arches_json.push(entry);
    }
    let json = json!({
        "suite": "net",
        "host": host_facts(),
        "accelerator": Accel::Tcg.to_string(),
        "method": "host `ping -q -f -c N -s SIZE` from a network namespace over a tap into the guest (x86_64: modern virtio-net-pci on q35; aarch64: virtio-mmio v2 on virt-gicv3); virtual ns per echo = the guest's counter from the first request to the last under -icount shift=0,sleep=off / echoes in that window; busy instructions (libos) = that window minus the ticks the guest spent halted; device counts per echo = QEMU trace events between the guest's start and end marks / N; pps = received / ping's time, median of 5 floods in one boot (TCG). TCP: one connection from the host, under -icount shift=0,sleep=on; busy instructions per operation = (window - idle ticks) / operations on both systems",
        "parts": options.parts,
        "requests_per_size": options.pings,
        "tcp_options": { "stream_mib": options.tcp.stream_mib, "round_trips": options.tcp.rounds },
        "arches": arches_json,
    });
    let mut md = String::from("# Network benchmark (`./x bench net`)\n\n");
    if !rows.is_empty() {
        md += &markdown(&rows, options.pings);
    }
    if !tcp_md.is_empty() {
        md += &format!(
            "\n## TCP stream and request/response against the Linux guest\n\n\
             One connection from the host over the tap, same card as above, under `-icount shift=0,sleep=on` with a device trace. \
             libos runs `apps/netecho bench MODE` (default buffers, `tcp_buffer=128K`), Linux `bench/c/tcp_bench.c MODE`: the same \
             calls, 64 KiB reads and writes, `TCP_NODELAY`. stream-in / stream-out: {} MiB to / from the guest; rr: {} one-byte \
             round trips; http: {} `GET`s answered with 4 KiB on one kept-alive connection. Busy instructions = (window - idle) / \
             operations: libos counts its halted ticks exactly; Linux's idle time comes from cpuidle residency (1 us) or, without a \
             cpuidle driver, `/proc/stat` (10 ms; see `idle_resolution_ns` in the JSON). Targets: busy instructions and exits per \
             operation at most 1/2 of Linux's (ratio <= 0.50).\n\n\
             | arch | workload | figure | libos | Linux | libos / Linux |\n|---|---|---|---|---|---|\n{tcp_md}",
            options.tcp.stream_mib, options.tcp.rounds, options.tcp.rounds
        );
    }
    if !tcp_c_md.is_empty() {
        md += &format!(
            "\n## The same C server on libos and on Linux\n\n\
             `bench/c/tcp_bench.c`, the static musl file the Linux guest runs, run unmodified on libos through posix-shim's \
             ELF loader (`elf-runner`, `./x run --elf`): the request/response workloads of the table above ({} round trips), \
             same measurement. Targets: busy instructions and exits per request at most 1/2 of Linux's.\n\n\
             | arch | workload | figure | libos (C) | Linux | libos / Linux |\n|---|---|---|---|---|---|\n{tcp_c_md}",
            options.tcp.rounds
        );
    }
    if !scale_md.is_empty() {
        md += &format!(
            "\n## Cost per packet against open connections\n\n`netecho tcp 7 {}` with `tcp_buffer=4K`: the host holds C - 1 idle TCP \
             connections and ping-pongs one byte on one more (one segment in, one out per round trip); busy guest \
             instructions per round trip (icount window minus halted ticks) and exits from a device trace. Target: the cost \
             at 10 000 connections at most 1.2x the cost at one.\n\n\
             | arch | open connections | busy instructions per round trip | exits per round trip | cost vs 1 connection |\n\
             |---|---|---|---|---|\n{scale_md}",
            super::net_scale::ROUNDS
        );
    }
    measure::write_results("net", &json, &md, &[])?;
    print!("{md}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let o = Options::parse(vec!["--arch".into(), "aarch64".into(), "--pings".into(), "100".into(), "--no-linux".into()]).unwrap();
        assert_eq!(o.arches, vec![Arch::Aarch64]);
        assert_eq!((o.pings, o.linux), (100, false));
        assert!(o.wants("icmp") && o.wants("tcp") && o.wants("scale"));
        let o = Options::parse(vec!["--only".into(), "tcp".into(), "--stream-mib".into(), "8".into(), "--rounds".into(), "50".into()]).unwrap();
        assert!(o.wants("tcp") && !o.wants("icmp") && !o.wants("scale"));
        assert_eq!((o.tcp.stream_mib, o.tcp.rounds), (8, 50));
        assert!(!Options::parse(vec!["--no-scale".into()]).unwrap().wants("scale"));
        assert!(Options::parse(vec!["--only".into(), "udp".into()]).is_err());
        assert!(Options::parse(vec!["--rounds".into(), "0".into()]).is_err());
        assert!(Options::parse(vec!["--pings".into(), "0".into()]).is_err());
        assert!(Options::parse(vec!["--pings".into()]).is_err());
        assert!(Options::parse(vec!["--fast".into()]).is_err());
    }

    #[test]
    fn table_has_ratios_where_both_systems_ran() {
        let size = |ns: f64, exits: f64| json!({ "virtual_ns_per_packet": ns, "pps": 100.0, "device_per_packet": { "total exits": exits } });
        let ours = vec![size(5000.0, 4.0); 4];
        let theirs = vec![size(10000.0, 8.0); 4];
        let md = markdown(&[(Arch::X86_64, ours.clone(), Some(theirs)), (Arch::Aarch64, ours, None)], 10);
        assert!(md.contains("| x86_64 | 1 B | virtual ns per echo (icount) | 5000 | 10000 | 0.50 |"), "{md}");
        assert!(md.contains("| x86_64 | 1472 B | exits per echo (MMIO/PIO + virtio notifications) | 4 | 8 | 0.50 |"), "{md}");
        assert!(md.contains("| aarch64 | 512 B | virtual ns per echo (icount) | 5000 | - | - |"), "{md}");
        assert!(md.contains("interrupts injected per echo | - | - | - |"), "{md}");
    }
}
