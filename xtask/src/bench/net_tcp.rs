//! The TCP workloads of `./x bench net` (issue 13's stream and request/response targets):
//! libos (`apps/netecho bench MODE`) against the Linux guest (`bench/c/tcp_bench.c MODE`), the
//! same work call for call, on the same card in the same run.
//!
//! Workloads (the guest serves one connection from the host, in the bench namespace):
//! - `stream-in`: the host sends [`Options::stream_mib`] MiB, the guest reads them;
//! - `stream-out`: the guest sends as much, the host reads;
//! - `rr`: one-byte ping-pong, [`Options::rounds`] round trips;
//! - `http`: `GET` + a 4 KiB answer on one kept-alive connection, as many round trips.
//!
//! Each boot runs under `-icount shift=0,sleep=on` (the host paces TCP, and with `sleep=off` a
//! guest waiting for it would see its retransmission timers fire early) with a device trace.
//! The guest reports its window's counter ticks and the ticks it spent idle in it:
//! **busy instructions per operation** = (window - idle) / operations (an operation is a MiB or
//! a round trip), and **exits per operation** = MMIO/PIO accesses + virtio notifications between
//! its marks / operations. libos counts idle ticks exactly (`libos::idle`); Linux's come from
//! cpuidle residency (1 us) where the kernel has a cpuidle driver, else `/proc/stat` (10 ms),
//! and the JSON records which resolution applied.

use super::linux::{command_line, per_operation, ticks_to_ns};
use super::net::{machine, transport};
use crate::arch::Arch;
use crate::linux::{LinuxGuest, bench_counters, check_run};
use crate::measure::{Counters, DeviceTrace, WINDOW_START, failure};
use crate::net::NetConfig;
use crate::netns::{GUEST_ADDRESS, GUEST_IP, GUEST_IP_OPTION, Netns, TAP};
use crate::qemu::{self, Outcome, VirtioTransport, VmConfig};
use crate::{Result, build};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// The guest's port for every workload.
const PORT: u16 = 5001;
/// Bytes per host read or write in the streams.
const IO_SIZE: usize = 64 * 1024;

/// How big the workloads are.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Options {
    /// MiB per stream direction.
    pub stream_mib: u64,
    /// Round trips per request/response workload.
    pub rounds: u64,
}

impl Default for Options {
    fn default() -> Options {
        // 256 MiB is the stream size. 20 000 round trips keep Linux's busy time in the
        // window over 0.2 s on both arches, so /proc/stat's 10 ms resolution (where Linux has
        // no cpuidle driver) stays a few percent at worst.
        Options { stream_mib: 256, rounds: 20_000 }
    }
}

/// One workload: the guest's mode argument, its size argument, what an operation is, and the
/// host's side of it.
struct Workload {
    mode: &'static str,
    unit: &'static str,
    size: fn(&Options) -> u64,
    operations: fn(&Options) -> u64,
    drive: fn(SocketAddr, u64) -> std::result::Result<(), String>,
}

const WORKLOADS: [Workload; 4] = [
    Workload { mode: "stream-in", unit: "MiB", size: |o| o.stream_mib << 20, operations: |o| o.stream_mib, drive: send_stream },
    Workload { mode: "stream-out", unit: "MiB", size: |o| o.stream_mib << 20, operations: |o| o.stream_mib, drive: receive_stream },
    Workload { mode: "rr", unit: "round trip", size: |o| o.rounds, operations: |o| o.rounds, drive: ping_pong },
    Workload { mode: "http", unit: "request", size: |o| o.rounds, operations: |o| o.rounds, drive: http_gets },
];

fn connect(guest: SocketAddr) -> std::result::Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&guest, Duration::from_secs(60)).map_err(|e| format!("connect {guest}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// `stream-in`: `bytes` to the guest, then EOF; waits for the guest's close.
fn send_stream(guest: SocketAddr, bytes: u64) -> std::result::Result<(), String> {
    let mut stream = connect(guest)?;
    let chunk = vec![b's'; IO_SIZE];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(IO_SIZE as u64) as usize;
        stream.write_all(&chunk[..n]).map_err(|e| format!("after {sent} bytes: {e}"))?;
        sent += n as u64;
    }
    stream.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut rest = [0u8; 16];
    stream.read(&mut rest).map_err(|e| format!("waiting for the guest's close: {e}"))?;
    Ok(())
}

/// `stream-out`: reads to the guest's EOF, checks the count, closes.
fn receive_stream(guest: SocketAddr, bytes: u64) -> std::result::Result<(), String> {
    let mut stream = connect(guest)?;
    let mut buf = vec![0u8; IO_SIZE];
    let mut received = 0u64;
    loop {
        match stream.read(&mut buf).map_err(|e| format!("after {received} bytes: {e}"))? {
            0 => break,
            n => received += n as u64,
        }
    }
    if received != bytes {
        return Err(format!("received {received} of {bytes} bytes"));
    }
    Ok(())
}

/// `rr`: `rounds + 1` one-byte round trips (also the measured connection of the scale bench).
pub(super) fn ping_pong(guest: SocketAddr, rounds: u64) -> std::result::Result<(), String> {
    let mut stream = connect(guest)?;
    let mut byte = [0u8; 1];
    for round in 0..=rounds {
        stream.write_all(&[round as u8]).map_err(|e| format!("round {round}: {e}"))?;
        stream.read_exact(&mut byte).map_err(|e| format!("round {round}: {e}"))?;
        if byte[0] != round as u8 {
            return Err(format!("round {round}: echoed {} instead of {}", byte[0], round as u8));
        }
    }
    Ok(())
}

/// `http`: `rounds + 1` GETs, each answer read to the end of its `Content-Length` body.
fn http_gets(guest: SocketAddr, rounds: u64) -> std::result::Result<(), String> {
    let mut stream = connect(guest)?;
    let mut buf = vec![0u8; 16 * 1024];
    for round in 0..=rounds {
        stream.write_all(b"GET /4k HTTP/1.1\r\nHost: guest\r\n\r\n").map_err(|e| format!("request {round}: {e}"))?;
        let mut have = 0;
        let head_end = loop {
            if let Some(at) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut buf[have..]).map_err(|e| format!("answer {round}: {e}"))? {
                0 => return Err(format!("answer {round}: EOF in the head")),
                n => have += n,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("answer {round}: no Content-Length in {head:?}"))?;
        if !head.starts_with("HTTP/1.1 200 ") || length != 4096 {
            return Err(format!("answer {round}: {head:?}"));
        }
        let mut body = have - head_end;
        while body < length {
            match stream.read(&mut buf).map_err(|e| format!("answer {round}: {e}"))? {
                0 => return Err(format!("answer {round}: EOF after {body} body bytes")),
                n => body += n,
            }
        }
        if body != length {
            return Err(format!("answer {round}: {body} body bytes for a Content-Length of {length}"));
        }
    }
    Ok(())
}

/// A guest that runs one workload: how to boot it for a mode and size, how to check its run,
/// how to read its counters.
struct Server<'a> {
    system: &'static str,
    config_for: &'a dyn Fn(&str, u64) -> VmConfig,
    check: fn(&str, &Outcome) -> Result<()>,
    counters: fn(&str) -> Counters,
}

/// One boot of `server` running `workload`, traced under icount: the JSON of its figures.
fn measure_one(arch: Arch, netns: &Netns, server: &Server<'_>, workload: &Workload, options: &Options) -> Result<Value> {
    let system = server.system;
    let what = format!("{system} {} ({arch})", workload.mode);
    eprintln!("==> {arch} {system}: TCP {}, {} {}(s), under icount + device trace", workload.mode, (workload.operations)(options), workload.unit);
    let trace = DeviceTrace::new(&crate::linux::cache_dir().join("traces"), &format!("{arch}-{}-tcp-{}", system.to_lowercase(), workload.mode))?;
    let mut config = (server.config_for)(workload.mode, (workload.size)(options));
    config.icount = true;
    config.icount_sleep = true;
    config.extra_args.extend(trace.qemu_args());
    config.timeout = Duration::from_secs(1800);
    let running = qemu::start(&config, false, None)?;
    if !running.wait_for_console(WINDOW_START, Duration::from_secs(300)) {
        running.kill();
        return Err(failure(&format!("{what}: never printed its start mark"), &running.finish()?));
    }
    let guest = SocketAddr::new(GUEST_IP.parse().map_err(|e| format!("{e}"))?, PORT);
    let (drive, size) = (workload.drive, (workload.size)(options));
    let driven = netns.run(move || drive(guest, size))?;
    if driven.is_err() {
        running.kill();
    }
    let outcome = running.finish()?;
    if let Err(e) = driven {
        return Err(failure(&format!("{what}: {e}"), &outcome));
    }
    (server.check)(&what, &outcome)?;
    let counters = (server.counters)(&outcome.console);
    let get = |name: &str| counters.get(name).copied().ok_or_else(|| format!("{what} printed no `{name}` figure"));
    let (hz, window, idle, operations) = (get("counter-hz")?, get("window-ticks")?, get("idle-ticks")?, get("operations")?.max(1));
    let busy = ticks_to_ns(window.saturating_sub(idle), hz) / operations as f64;
    Ok(json!({
        "operations": operations,
        "unit": workload.unit,
        "busy_instructions_per_operation": super::round(busy),
        "idle_share_of_window": super::round(idle as f64 / window.max(1) as f64),
        "idle_resolution_ns": counters.get("idle-resolution-ns").copied().unwrap_or(1),
        "device_per_operation": per_operation(&trace.window()?, operations),
        "window_virtual_ms": super::round(ticks_to_ns(window, hz) / 1e6),
        "qemu_command": command_line(&config),
    }))
}

/// Every workload on `server`: mode -> figures.
fn measure_all(arch: Arch, netns: &Netns, server: &Server<'_>, options: &Options) -> Result<Vec<Value>> {
    measure_modes(arch, netns, server, options, &WORKLOADS.map(|w| w.mode))
}

/// The workloads `modes` on `server`.
fn measure_modes(arch: Arch, netns: &Netns, server: &Server<'_>, options: &Options, modes: &[&str]) -> Result<Vec<Value>> {
    WORKLOADS
        .iter()
        .filter(|w| modes.contains(&w.mode))
        .map(|w| Ok(json!({ "workload": w.mode, "figures": measure_one(arch, netns, server, w, options)? })))
        .collect()
}

/// The request/response workloads (the C server's target is about these).
pub(super) const REQUEST_RESPONSE: [&str; 2] = ["rr", "http"];

/// libos's figures on `arch`: `netecho bench MODE PORT SIZE` with the default TCP buffers.
pub(super) fn libos(arch: Arch, netns: &Netns, options: &Options) -> Result<Vec<Value>> {
    let image = build::build_app("netecho", arch, true)?;
    let config_for = |mode: &str, size: u64| {
        let mut config = VmConfig::new(arch, image.clone());
        config.machine = machine(arch);
        config.memory = "256M".into();
        config.cmdline = qemu::kernel_cmdline(GUEST_IP_OPTION, &["bench".into(), mode.into(), PORT.to_string(), size.to_string()]);
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport(arch));
        config.launcher = netns.launcher();
        config
    };
    let check = |what: &str, outcome: &Outcome| if outcome.exit == qemu::Exit::Code(0) { Ok(()) } else { Err(failure(what, outcome)) };
    measure_all(arch, netns, &Server { system: "libos", config_for: &config_for, check, counters: bench_counters }, options)
}

/// libos's figures on `arch` for the C program of the Linux guest, `bench/c/tcp_bench.c`, the
/// same static musl file run unmodified through posix-shim (elf-runner): `tcp_bench MODE PORT
/// SIZE` with the default TCP buffers.
pub(super) fn libos_c(arch: Arch, netns: &Netns, options: &Options) -> Result<Vec<Value>> {
    crate::linux::ensure_host_tools(&[arch])?;
    let program = crate::linux::compile_program("tcp_bench", arch)?;
    let image = build::elf_runner_with(arch, true, Some(&program), None)?;
    let config_for = |mode: &str, size: u64| {
        let mut config = VmConfig::new(arch, image.clone());
        config.machine = machine(arch);
        config.memory = "256M".into();
        let args = ["/bin/tcp_bench".into(), mode.into(), PORT.to_string(), size.to_string()];
        config.cmdline = qemu::kernel_cmdline(GUEST_IP_OPTION, &args);
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport(arch));
        config.launcher = netns.launcher();
        config
    };
    let check = |what: &str, outcome: &Outcome| if outcome.exit == qemu::Exit::Code(0) { Ok(()) } else { Err(failure(what, outcome)) };
    measure_modes(arch, netns, &Server { system: "libos-C", config_for: &config_for, check, counters: bench_counters }, options, &REQUEST_RESPONSE)
}

/// The Linux guest's figures on `arch`: `tcp_bench MODE PORT SIZE`.
pub(super) fn linux(guest: &LinuxGuest, netns: &Netns, options: &Options) -> Result<Vec<Value>> {
    let arch = guest.arch;
    let module = if transport(arch) == VirtioTransport::Pci { guest.virtio_transport() } else { "virtio_mmio" };
    let modules = guest.modules_for(&[module, "virtio_net"])?;
    let config_for = |mode: &str, size: u64| {
        let args = [mode.to_string(), PORT.to_string(), size.to_string()];
        let mut config = guest.config("tcp_bench", &args, &modules, &format!("bench.net={GUEST_ADDRESS}"));
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport(arch));
        config.launcher = netns.launcher();
        config
    };
    measure_all(arch, netns, &Server { system: "Linux", config_for: &config_for, check: check_run, counters: bench_counters }, options)
}

/// The figures compared in the table: label and path in a workload's `figures`.
const FIGURES: [(&str, &str); 3] = [
    ("busy instructions", "busy_instructions_per_operation"),
    ("exits (MMIO/PIO + notifications)", "device_per_operation.total exits"),
    ("interrupts injected", "device_per_operation.total interrupts injected"),
];

fn figure(workload: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(&workload["figures"], |v, k| v.get(k)).and_then(Value::as_f64)
}

/// The workload of `theirs` with the name of `ours`.
fn same_workload<'a>(theirs: Option<&'a [Value]>, ours: &Value) -> Option<&'a Value> {
    theirs?.iter().find(|t| t["workload"] == ours["workload"])
}

/// libos / Linux for every workload and figure (null where Linux did not run or is 0).
pub(super) fn ratios(ours: &[Value], theirs: Option<&[Value]>) -> Vec<Value> {
    ours.iter()
        .map(|w| {
            let mut row = serde_json::Map::new();
            row.insert("workload".into(), w["workload"].clone());
            for (_, path) in FIGURES {
                let them = same_workload(theirs, w).and_then(|t| figure(t, path));
                let ratio = match (figure(w, path), them) {
                    (Some(a), Some(b)) if b > 0.0 => json!(super::round(a / b)),
                    _ => Value::Null,
                };
                row.insert(path.into(), ratio);
            }
            Value::Object(row)
        })
        .collect()
}

/// The markdown rows of one arch: workload, figure per operation, libos, Linux, ratio.
pub(super) fn markdown(arch: Arch, ours: &[Value], theirs: Option<&[Value]>) -> String {
    let mut md = String::new();
    for w in ours {
        let unit = w["figures"]["unit"].as_str().unwrap_or("operation");
        for (label, path) in FIGURES {
            let us = figure(w, path);
            let them = same_workload(theirs, w).and_then(|t| figure(t, path));
            let cell = |v: Option<f64>| v.map_or("-".to_string(), crate::measure::format_figure);
            let ratio = match (us, them) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            md += &format!("| {arch} | {} | {label} per {unit} | {} | {} | {ratio} |\n", w["workload"].as_str().unwrap_or("?"), cell(us), cell(them));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, busy: f64, exits: f64) -> Value {
        json!({ "workload": name, "figures": { "unit": "MiB", "busy_instructions_per_operation": busy, "device_per_operation": { "total exits": exits } } })
    }

    #[test]
    fn ratios_and_table_compare_libos_with_linux() {
        let ours = [workload("stream-in", 1000.0, 10.0)];
        let theirs = [workload("stream-in", 4000.0, 40.0)];
        let r = ratios(&ours, Some(&theirs));
        assert_eq!(r[0]["busy_instructions_per_operation"], json!(0.25));
        assert_eq!(r[0]["device_per_operation.total interrupts injected"], Value::Null);
        let md = markdown(Arch::X86_64, &ours, Some(&theirs));
        assert!(md.contains("| x86_64 | stream-in | busy instructions per MiB | 1000 | 4000 | 0.25 |"), "{md}");
        assert!(md.contains("| x86_64 | stream-in | exits (MMIO/PIO + notifications) per MiB | 10 | 40 | 0.25 |"), "{md}");
        assert!(markdown(Arch::Aarch64, &ours, None).contains("| 1000 | - | - |"));
    }

    #[test]
    fn workloads_are_sized_by_the_options() {
        let o = Options { stream_mib: 2, rounds: 7 };
        let sizes: Vec<u64> = WORKLOADS.iter().map(|w| (w.size)(&o)).collect();
        assert_eq!(sizes, [2 << 20, 2 << 20, 7, 7]);
        let operations: Vec<u64> = WORKLOADS.iter().map(|w| (w.operations)(&o)).collect();
        assert_eq!(operations, [2, 2, 7, 7]);
    }
}
