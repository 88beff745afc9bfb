//! `./x bench sched`: the scheduler's costs as guest instructions (deterministic, QEMU
//! `-icount shift=0,sleep=off`, where the guest clock advances 1 ns per instruction, so
//! instructions = counter ticks * 1e9 / counter frequency), per architecture and policy:
//!
//! - a yield switch between two threads (two threads yielding to each other; per switch);
//! - spawn + join of a trivial thread (per pair);
//! - timer interrupts while the only thread sleeps one second (a tickless idle takes one).
//!
//! The guest side is the `threads` app's `bench-*` checks.

use super::{host_facts, results_dir, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::qemu::{self, Exit, VmConfig};
use crate::{Result, build};
use std::time::Duration;

const TARGET_YIELD: f64 = 250.0;
const TARGET_SPAWN_JOIN: f64 = 4000.0;

/// `key=value` from the `[bench] NAME ...` line.
fn field(console: &str, name: &str, key: &str) -> Option<u64> {
    let line = console.lines().find_map(|l| l.strip_prefix(&format!("[bench] {name}")))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}="))?.parse().ok())
}

/// One measurement of one arch and policy.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Measured {
    yield_switch: f64,
    spawn_join: f64,
    idle_interrupts: u64,
}

fn measure(arch: Arch, policy: &str) -> Result<Measured> {
    let image = build::build_app("threads", arch, true)?;
    let mut config = VmConfig::new(arch, image);
    config.accel = Accel::Tcg;
    config.icount = true;
    config.cmdline = qemu::kernel_cmdline(&format!("sched={policy}"), &["bench-yield".into(), "bench-spawn".into(), "bench-idle".into()]);
    config.timeout = Duration::from_secs(120);
    let outcome = qemu::run(&config, false)?;
    if outcome.exit != Exit::Code(0) {
        return Err(format!("threads bench on {arch} ({policy}) ended with {:?}:\n{}", outcome.exit, outcome.console).into());
    }
    let c = &outcome.console;
    let missing = || format!("missing [bench] lines on {arch}:\n{c}");
    let hz: u64 = c.lines().find_map(|l| l.strip_prefix("[bench] counter-hz=")?.trim().parse().ok()).ok_or_else(missing)?;
    let hz = hz as f64;
    let instructions = |ticks: u64| ticks as f64 * 1e9 / hz;
    let yield_ticks = field(c, "yield-switch", "ticks").ok_or_else(missing)?;
    let switches = field(c, "yield-switch", "switches").ok_or_else(missing)?;
    let spawn_ticks = field(c, "spawn-join", "ticks").ok_or_else(missing)?;
    let ops = field(c, "spawn-join", "ops").ok_or_else(missing)?;
    let idle_interrupts = field(c, "idle-1s", "timer-interrupts").ok_or_else(missing)?;
    Ok(Measured {
        yield_switch: instructions(yield_ticks) / switches as f64,
        spawn_join: instructions(spawn_ticks) / ops as f64,
        idle_interrupts,
    })
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    if let Some(other) = args.first() {
        return Err(format!("unknown option `{other}` for bench sched").into());
    }
    let mut rows = Vec::new();
    for arch in Arch::ALL.into_iter().filter(|a| a.is_supported()) {
        for policy in ["coop", "rr"] {
            eprintln!("==> {arch} sched={policy}: icount, 2 runs");
            let first = measure(arch, policy)?;
            let second = measure(arch, policy)?;
            rows.push((arch, policy, first, first == second));
        }
    }
    let json = serde_json::json!({
        "suite": "sched",
        "host": host_facts(),
        "method": "QEMU TCG -icount shift=0,sleep=off; guest counter ticks converted to instructions (1 ns per instruction); threads app bench-yield (2000 rounds of two threads yielding), bench-spawn (200 spawn+join), bench-idle (one thread sleeping 1 s)",
        "results": rows.iter().map(|(arch, policy, m, det)| serde_json::json!({
            "arch": arch.to_string(), "policy": policy,
            "instructions_per_yield_switch": round(m.yield_switch),
            "instructions_per_spawn_join": round(m.spawn_join),
            "timer_interrupts_idle_1s": m.idle_interrupts,
            "deterministic": det,
        })).collect::<Vec<_>>(),
        "targets": { "yield_switch_max": TARGET_YIELD, "spawn_join_max": TARGET_SPAWN_JOIN, "idle_interrupts": "only those the sleep needs (1)" },
    });
    let mut md = String::from("# Scheduler benchmark (`./x bench sched`)\n\n");
    md += "Guest instructions under QEMU TCG `-icount shift=0,sleep=off` (deterministic: two runs must agree), `threads` app.\n";
    md += &format!("Host: {}.\n\n", json["host"]["cpu"].as_str().unwrap_or("?"));
    md += "| arch | policy | instructions / yield switch | instructions / spawn+join | timer interrupts, 1 s idle sleep | deterministic |\n|---|---|---|---|---|---|\n";
    for (arch, policy, m, det) in &rows {
        md += &format!("| {arch} | {policy} | {:.0} | {:.0} | {} | {det} |\n", m.yield_switch, m.spawn_join, m.idle_interrupts);
    }
    md += &format!(
        "\nTargets: yield switch <= {TARGET_YIELD:.0} instructions, spawn+join <= {TARGET_SPAWN_JOIN:.0}, an idle system with one sleeping thread takes only the timer interrupts its sleep needs.\n\n"
    );
    md += "| target | met |\n|---|---|\n";
    let all = |f: &dyn Fn(&Measured) -> bool| rows.iter().all(|(_, _, m, _)| f(m));
    md += &format!("| yield switch <= {TARGET_YIELD:.0} | {} |\n", yes(all(&|m| m.yield_switch <= TARGET_YIELD)));
    md += &format!("| spawn+join <= {TARGET_SPAWN_JOIN:.0} | {} |\n", yes(all(&|m| m.spawn_join <= TARGET_SPAWN_JOIN)));
    md += &format!("| 1 timer interrupt for a 1 s idle sleep | {} |\n", yes(all(&|m| m.idle_interrupts <= 1)));
    let dir = results_dir()?;
    std::fs::write(dir.join("sched.json"), serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(dir.join("sched.md"), &md)?;
    print!("{md}");
    eprintln!("==> wrote bench/results/sched.json and bench/results/sched.md");
    Ok(0)
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        let console = "[bench] counter-hz=1000000000\n[bench] yield-switch ticks=1000 switches=4\n";
        assert_eq!(field(console, "yield-switch", "ticks"), Some(1000));
        assert_eq!(field(console, "yield-switch", "switches"), Some(4));
        assert_eq!(field(console, "spawn-join", "ops"), None);
    }
}
