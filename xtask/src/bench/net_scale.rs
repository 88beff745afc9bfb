//! Per-packet cost against the number of open TCP connections (issue 13, item 4): does the
//! stack's work per packet grow with the connections it holds?
//!
//! For each count C of [`CONNECTIONS`], one boot of `netecho tcp 7 ROUNDS C-1` under icount
//! (`sleep=on`: the host paces the round trips, see `VmConfig::icount_sleep`) with a device
//! trace (`tcp_buffer=4K`, so that 10 000 connections fit in 1 GiB): the host opens C - 1
//! connections that stay idle, waits for the guest to say it holds them, then opens one more
//! that ping-pongs one byte ROUNDS + 1 times. The
//! guest measures the window from the first byte to the last echo: busy instructions per
//! round trip (window minus the ticks it spent halted, `libos::idle`) and, from the trace,
//! exits per round trip. A round trip is one segment in and one out (the host's ACK rides on
//! its next request).

use super::linux::{command_line, per_operation, ticks_to_ns};
use super::net::{machine, transport};
use crate::arch::Arch;
use crate::linux::bench_counters;
use crate::measure::{DeviceTrace, failure};
use crate::net::NetConfig;
use crate::netns::{Netns, TAP};
use crate::qemu::{self, VmConfig};
use crate::{Result, build};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The connection counts measured.
pub const CONNECTIONS: [usize; 4] = [1, 100, 1_000, 10_000];
/// Round trips in the measured window.
pub(super) const ROUNDS: u64 = 2_000;
const GUEST: &str = "10.0.2.15:7";
/// The pause before the measured connection, after the guest holds the idle ones.
const SETTLE: Duration = Duration::from_secs(1);

/// Lets this process hold `n` sockets.
fn raise_file_limit(n: u64) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    if soft < n {
        setrlimit(Resource::RLIMIT_NOFILE, n.min(hard).max(soft), hard).map_err(|e| format!("setrlimit: {e}"))?;
    }
    Ok(())
}

/// The host side's first half, inside the namespace: `idle` connections that stay idle.
fn open_idle(idle: usize) -> std::result::Result<Vec<TcpStream>, String> {
    let guest: SocketAddr = GUEST.parse().map_err(|e| format!("{e}"))?;
    (0..idle).map(|i| TcpStream::connect_timeout(&guest, Duration::from_secs(60)).map_err(|e| format!("idle connection {i}: {e}"))).collect()
}

/// The second half: `ROUNDS + 1` one-byte round trips on one more connection, while `held`
/// stay open.
fn round_trips(held: Vec<TcpStream>) -> std::result::Result<(), String> {
    let guest: SocketAddr = GUEST.parse().map_err(|e| format!("{e}"))?;
    super::net_tcp::ping_pong(guest, ROUNDS)?;
    drop(held);
    Ok(())
}

/// Measures every count of [`CONNECTIONS`] on `arch`; one JSON object per count.
pub(super) fn measure(arch: Arch, netns: &Netns) -> Result<Vec<Value>> {
    raise_file_limit(CONNECTIONS[CONNECTIONS.len() - 1] as u64 + 256)?;
    let image = build::build_app("netecho", arch, true)?;
    let mut rows = Vec::new();
    for connections in CONNECTIONS {
        eprintln!("==> {arch} libos: TCP 1-byte round trips with {connections} open connection(s), under icount + device trace");
        let trace = DeviceTrace::new(&crate::linux::cache_dir().join("traces"), &format!("{arch}-libos-tcp-rr-{connections}"))?;
        let mut config = VmConfig::new(arch, image.clone());
        config.machine = machine(arch);
        config.memory = "1G".into();
        let idle = connections - 1;
        let mut args = vec!["tcp".to_string(), "7".into(), ROUNDS.to_string()];
        if idle > 0 {
            args.push(idle.to_string());
        }
        config.cmdline = qemu::kernel_cmdline("ip=10.0.2.15/24,gw=10.0.2.1 tcp_buffer=4K", &args);
        config.net = Some(NetConfig::tap(TAP));
        config.virtio_transport = Some(transport(arch));
        config.launcher = netns.launcher();
        config.icount = true;
        config.icount_sleep = true;
        config.extra_args.extend(trace.qemu_args());
        config.timeout = Duration::from_secs(1200);
        let running = qemu::start(&config, false, None)?;
        if !running.wait_for_console("tcp echo on port 7", Duration::from_secs(120)) {
            running.kill();
            return Err(failure("netecho tcp (never listened)", &running.finish()?));
        }
        // The host's connect returns at the SYN-ACK; the guest still has to accept the idle
        // connections and register them with its poller. It says when it holds them all, and
        // only then does the measured connection start (else the window holds the last
        // accepts: 4x the cost of one connection on aarch64 under TCG, where a fixed pause was
        // not always enough).
        let driven = match netns.run(move || open_idle(idle))? {
            Ok(held) if idle == 0 || running.wait_for_console(&format!("[netecho] holding {idle} connections"), Duration::from_secs(600)) => {
                // Then a second for the guest to finish what it does right after boot or after
                // the accepts (the same for every count).
                std::thread::sleep(SETTLE);
                netns.run(move || round_trips(held))?
            }
            Ok(_) => Err(format!("the guest never said it holds {idle} connections")),
            Err(e) => Err(e),
        };
        if driven.is_err() {
            running.kill();
        }
        let outcome = running.finish()?;
        if let Err(e) = driven {
            return Err(failure(&format!("TCP round trips with {connections} connections: {e}"), &outcome));
        }
        if outcome.exit != qemu::Exit::Code(0) {
            return Err(failure("netecho tcp 7 ROUNDS", &outcome));
        }
        let counters = bench_counters(&outcome.console);
        let get = |name: &str| counters.get(name).copied().ok_or_else(|| format!("netecho printed no `{name}` line"));
        let (hz, window, idle, operations) = (get("counter-hz")?, get("window-ticks")?, get("idle-ticks")?, get("operations")?);
        let busy = ticks_to_ns(window.saturating_sub(idle), hz) / operations.max(1) as f64;
        rows.push(json!({
            "connections": connections,
            "round_trips": operations,
            "busy_instructions_per_round_trip": super::round(busy),
            "device_per_round_trip": per_operation(&trace.window()?, operations),
            "qemu_command": command_line(&config),
        }));
    }
    let base = rows.first().and_then(|r| r["busy_instructions_per_round_trip"].as_f64()).unwrap_or(0.0);
    for row in &mut rows {
        let cost = row["busy_instructions_per_round_trip"].as_f64().unwrap_or(0.0);
        row["cost_vs_one_connection"] = json!(if base > 0.0 { super::round(cost / base) } else { 0.0 });
    }
    Ok(rows)
}

/// The markdown table of [`measure`]'s rows for `arch`.
pub(super) fn markdown(arch: Arch, rows: &[Value]) -> String {
    let mut md = String::new();
    for row in rows {
        let exits = row["device_per_round_trip"]["total exits"].as_f64().unwrap_or(0.0);
        md += &format!(
            "| {arch} | {} | {} | {} | {} |\n",
            row["connections"],
            row["busy_instructions_per_round_trip"],
            crate::measure::format_figure(exits),
            row["cost_vs_one_connection"]
        );
    }
    md
}
