//! The seed-003 ICMP echo workload against a guest: the host floods the guest with echo
//! requests of 1, 512, 1024 and 1472 bytes and counts what it costs.
//!
//! The guest's network is a tap device inside a network namespace created for the run
//! ([`Netns`], shared with `./x run --net tap` and the tests): QEMU is started inside it (`ip
//! netns exec`), the host end of the tap gets [`HOST_ADDRESS`](crate::netns::HOST_ADDRESS) and
//! the guest [`GUEST_ADDRESS`], and nothing is routed anywhere else, so no packet leaves the
//! machine's own namespaces. The namespace is deleted when the measure ends, fails or panics,
//! and on Ctrl-C.
//!
//! Per payload size, two boots of the guest program `icmp_echo` (it prints `[bench] mark start`,
//! waits for N echo requests, prints `[bench] mark end`):
//! 1. plain TCG: the host runs `ping -f -c N -s SIZE` five times in one boot and reports the
//!    median packets per second (wall, with min and max);
//! 2. icount + device trace: the same flood; device traffic per packet is the traffic between
//!    the two marks ([`crate::measure::parse_trace_window`]) / N.

use super::linux::{command_line, per_operation, ticks_to_ns};
use crate::linux::{LinuxGuest, bench_counters, check_run};
use crate::measure::{Counters, DeviceTrace, WINDOW_START, failure};
use crate::netns::{GUEST_ADDRESS, GUEST_IP, Netns, PingSummary, TAP, parse_ping};
use crate::net::NetConfig;
use crate::qemu::{self, VirtioTransport, VmConfig};
use crate::Result;
use serde_json::{Value, json};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The payload sizes of the seed-003 measurement.
pub const PAYLOAD_SIZES: [u32; 4] = [1, 512, 1024, 1472];

/// Boots `config` (inside `netns`; its guest must expect `count * floods` requests), waits for
/// the guest's start mark, floods it `floods` times with `count` echo requests of `size` bytes,
/// and returns ping's summaries and the guest's counters (after checking the guest succeeded).
fn flood(netns: &Netns, responder: &Responder<'_>, config: &VmConfig, size: u32, count: u64, floods: usize) -> Result<(Vec<PingSummary>, Counters)> {
    let (sender, console) = mpsc::channel();
    let config_for_thread = config.clone();
    let guest = std::thread::spawn(move || qemu::run_observed(&config_for_thread, false, Some(sender)));
    let started = Instant::now();
    let mut seen = String::new();
    let ready = loop {
        match console.recv_timeout(Duration::from_secs(1)) {
            Ok(chunk) => {
                seen.push_str(&chunk);
                if seen.contains(WINDOW_START) {
                    break true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() > config.timeout => break false,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    let mut summaries = Vec::new();
    for _ in 0..if ready { floods } else { 0 } {
        // -f: the next request leaves when the reply arrives (or after 10 ms); -w bounds the time.
        let output = netns
            .command("ping")
            .args(["-q", "-f", "-c", &count.to_string(), "-s", &size.to_string(), "-w", "600", GUEST_IP])
            .output()
            .map_err(|e| format!("cannot run ping: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        summaries.push(parse_ping(&text).ok_or_else(|| format!("cannot read ping's summary:\n{text}{}", String::from_utf8_lossy(&output.stderr)))?);
    }
    let outcome = guest.join().map_err(|_| "the guest thread panicked")??;
    if !ready {
        return Err(failure(&format!("{} (never printed its start mark)", responder.program), &outcome));
    }
    (responder.check)(responder.program, &outcome)?;
    Ok((summaries, (responder.counters)(&outcome.console)))
}

/// A guest that answers echo requests between its `[bench] mark start` and `mark end` lines and
/// then prints its counter's frequency (`counter-hz`) and the ticks of the measured window
/// (`window-ticks`), read by [`Responder::counters`].
pub(super) struct Responder<'a> {
    /// Which system it is, for messages and file names (`Linux`, `libos`).
    pub system: &'a str,
    /// The guest program, for messages.
    pub program: &'a str,
    /// The boot of a guest that waits for `n` requests (QEMU inside the namespace).
    pub config_for: &'a dyn Fn(u64) -> VmConfig,
    /// Checks that a run succeeded (`what`, its outcome).
    pub check: fn(&str, &qemu::Outcome) -> Result<()>,
    /// Reads the counters from the console ([`bench_counters`] for `[bench] NAME: VALUE`).
    pub counters: fn(&str) -> Counters,
}

/// Measures `responder` on `arch` for every size of [`PAYLOAD_SIZES`] with `count` requests
/// each: pps (median of 5 floods, TCG) and, under icount with a device trace, device traffic
/// and virtual ns per packet. One JSON object per size.
pub(super) fn measure_sizes(arch: crate::arch::Arch, netns: &Netns, responder: &Responder<'_>, count: u64) -> Result<Vec<Value>> {
    let traced = |config: &VmConfig, name: &str| -> Result<(VmConfig, DeviceTrace)> {
        let trace = DeviceTrace::new(&crate::linux::cache_dir().join("traces"), name)?;
        let mut config = config.clone();
        config.extra_args.extend(trace.qemu_args());
        config.icount = true;
        Ok((config, trace))
    };
    let system = responder.system;
    let mut sizes = Vec::new();
    for size in PAYLOAD_SIZES {
        eprintln!("==> {arch} {system}: ICMP echo, {count} x {size} bytes: host ping -f (TCG), then again under icount + device trace");
        let floods = crate::measure::MIN_WALL_RUNS;
        let (summaries, _) = flood(netns, responder, &(responder.config_for)(count * floods as u64), size, count, floods)?;
        if let Some(short) = summaries.iter().find(|s| s.received != count) {
            return Err(format!("{system} {size}-byte flood: {} of {count} replies", short.received).into());
        }
        let pps = crate::measure::median_min_max(summaries.iter().map(PingSummary::pps).collect());
        let config = (responder.config_for)(count);
        let (icount_config, trace) = traced(&config, &format!("{arch}-{}-icmp-{size}", system.to_lowercase()))?;
        let (icount_summaries, counters) = flood(netns, responder, &icount_config, size, count, 1)?;
        let window = trace.window()?;
        let counter = |name: &str| counters.get(name).copied().ok_or_else(|| format!("{} printed no `[bench] {name}: N` line", responder.program));
        let (hz, window_ticks) = (counter("counter-hz")?, counter("window-ticks")?);
        let per_packet = per_operation(&window, count);
        // The window spans `operations` echoes (first request to last) where the guest says so.
        let operations = counters.get("operations").copied().unwrap_or(count).max(1);
        let busy = counters.get("idle-ticks").map(|&idle| super::round(ticks_to_ns(window_ticks.saturating_sub(idle), hz) / operations as f64));
        sizes.push(json!({
            "payload_bytes": size,
            "requests": count,
            "floods": floods,
            "pps": super::round(pps.0),
            "pps_min": super::round(pps.1),
            "pps_max": super::round(pps.2),
            "pps_under_icount": icount_summaries.first().map(|s| super::round(s.pps())),
            "device_per_packet": per_packet,
            "virtual_ns_per_packet": super::round(ticks_to_ns(window_ticks, hz) / operations as f64),
            "busy_instructions_per_packet": busy,
        }));
    }
    Ok(sizes)
}

/// Runs the ICMP workload against the Linux guest `guest` with `count` requests per size.
pub fn run(guest: &LinuxGuest, count: u64) -> Result<Value> {
    let arch = guest.arch;
    let netns = Netns::create("bench")?;
    let transport = super::net::transport(arch);
    let module = if transport == VirtioTransport::Pci { guest.virtio_transport() } else { "virtio_mmio" };
    let modules = guest.modules_for(&[module, "virtio_net"])?;
    let config_for = |n: u64| {
        let mut config = guest.config("icmp_echo", &[n.to_string(), "300".into()], &modules, &format!("bench.net={GUEST_ADDRESS}"));
        // The same card as the libos guest of `./x bench net` (see `net::transport`).
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport);
        config.launcher = netns.launcher();
        config.timeout = Duration::from_secs(900);
        config
    };
    let responder = Responder { system: "Linux", program: "icmp_echo", config_for: &config_for, check: check_run, counters: bench_counters };
    let sizes = measure_sizes(arch, &netns, &responder, count)?;
    Ok(json!({
        "program": "bench/c/icmp_echo.c",
        "method": "host `ping -q -f -c N -s SIZE` from a network namespace over a tap; pps = received / ping's time (TCG wall), median of 5 floods in one boot; device counts per packet = traffic between the guest's start and end marks in a traced icount run / N",
        "virtual_ns_note": "instructions plus idle time QEMU skipped between packets (icount sleep=off)",
        "sizes": sizes,
        "qemu_command": command_line(&config_for(count)),
    }))
}
