//! `./x bench boot`, aarch64 part: the same measures as for x86_64 (see [`super::boot`]), on
//! QEMU virt (GICv3, cortex-a72), TCG (aarch64 guests on this x86_64 host have no KVM).
//!
//! The counter is the generic timer's virtual count, which under icount follows QEMU's virtual
//! clock at CNTFRQ_EL0, so instructions = ticks * 1e9 / CNTFRQ (62.5 MHz on QEMU's cortex-a72:
//! one tick is 16 instructions, the figures' resolution). The wall-time floor is a 112-byte
//! arm64 `Image` ([`floor::arm64_floor`]).

use super::boot::{boot_stats, smallest_ram_mib, targets, wall_against_floor};
use super::round;
use crate::accel::Accel;
use crate::arch::Arch;
use crate::qemu::{Machine, VmConfig};
use crate::{Result, build, floor};
use std::time::Duration;

/// Instructions for `ticks` of a counter at `hz` under icount shift=0 (1 ns per instruction).
fn ticks_to_instructions(ticks: u64, hz: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1))) as u64
}

/// The aarch64 part of the benchmark: its JSON object and its Markdown section.
pub(super) fn run(runs: usize) -> Result<(serde_json::Value, String)> {
    let arch = Arch::Aarch64;
    let image = build::build_app("hello", arch, false)?;
    let machine = Machine::default_for(arch);

    eprintln!("==> aarch64: instructions to main and to exit (icount, 2 runs)");
    let mut icount = VmConfig::new(arch, image.clone());
    icount.accel = Accel::Tcg;
    icount.icount = true;
    icount.cmdline = "bootstats".into();
    icount.timeout = Duration::from_secs(60);
    let repeated = crate::measure::icount_twice(&icount, |outcome| boot_stats("aarch64 hello under icount", outcome))?;
    let c = &repeated.counters;
    let (to_main_ticks, to_exit_ticks, hz) = (c["entry-to-main"], c["entry-to-exit"], c["counter-hz"]);
    let deterministic = repeated.counters == repeated.second;
    let to_main = ticks_to_instructions(to_main_ticks, hz);
    let to_exit = ticks_to_instructions(to_exit_ticks, hz);
    let resolution = ticks_to_instructions(1, hz);

    eprintln!("==> aarch64: wall time, hello vs floor kernel, {runs} interleaved runs each (TCG)");
    let floor_image = floor::arm64_floor_image()?;
    let floor_config = VmConfig::new(arch, floor_image);
    let hello_config = VmConfig::new(arch, image.clone());
    let (floor_wall, hello_wall) = wall_against_floor(&floor_config, &hello_config, runs)?;
    let ratio = hello_wall.median / floor_wall.median;

    let file_bytes = std::fs::read(&image)?.len() as u64;
    eprintln!("==> aarch64: smallest guest RAM");
    let smallest_mib = smallest_ram_mib(&hello_config)?;

    let targets = targets(to_main, ratio, file_bytes, smallest_mib);
    let json = serde_json::json!({
        "arch": arch.name(),
        "machine": machine.name(),
        "accelerator": "TCG",
        "instructions": {
            "method": "QEMU TCG -icount shift=0,sleep=off; [boot-stats] CNTVCT_EL0 ticks * 1e9 / CNTFRQ_EL0",
            "entry_to_main": to_main,
            "entry_to_exit": to_exit,
            "entry_to_main_ticks": to_main_ticks,
            "entry_to_exit_ticks": to_exit_ticks,
            "counter_hz": hz,
            "resolution_instructions": resolution,
            "deterministic_over_2_runs": deterministic,
        },
        "wall": {
            "method": format!("whole QEMU process, virt GICv3, cortex-a72, 64 MiB, {runs} interleaved runs each"),
            "accelerator": "TCG",
            "floor": floor_wall.json(),
            "hello": hello_wall.json(),
            "ratio_of_medians": round(ratio),
            "floor_command": format!("{:?}", floor_config.command()),
        },
        "image": { "file_bytes": file_bytes },
        "memory": { "smallest_mib": smallest_mib },
        "targets": targets.iter().map(|(name, met, detail)| serde_json::json!({"target": name, "met": met, "detail": detail})).collect::<Vec<_>>(),
    });
    let mut md = String::new();
    md += "\n## aarch64\n\n";
    md += "aarch64 `hello`, QEMU virt (GICv3, cortex-a72), TCG (no aarch64 KVM on this host).\n\n";
    md += "| measure | value |\n|---|---|\n";
    md += &format!("| guest instructions, entry to `main` (icount, {hz} Hz counter: {resolution} instructions per tick; deterministic: {deterministic}) | **{to_main}** |\n");
    md += &format!("| guest instructions, entry to exit | {to_exit} |\n");
    md += &format!("| wall, floor kernel (TCG, median of {runs}) | {:.1} ms (min {:.1}, max {:.1}) |\n", floor_wall.median, floor_wall.min, floor_wall.max);
    md += &format!("| wall, `hello` (TCG, median of {runs}) | {:.1} ms (min {:.1}, max {:.1}) |\n", hello_wall.median, hello_wall.min, hello_wall.max);
    md += &format!("| wall ratio `hello` / floor (TCG) | **{ratio:.2}x** |\n");
    md += &format!("| Image file size | {file_bytes} bytes ({} KiB) |\n", file_bytes.div_ceil(1024));
    md += &format!("| smallest guest RAM | {smallest_mib} MiB |\n\n");
    md += "| target | met | measured |\n|---|---|---|\n";
    for (name, met, detail) in &targets {
        md += &format!("| {name} | {} | {detail} |\n", if *met { "yes" } else { "**no**" });
    }
    Ok((json, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_ticks_become_instructions() {
        assert_eq!(ticks_to_instructions(1000, 62_500_000), 16_000);
        assert_eq!(ticks_to_instructions(1000, 1_000_000_000), 1000);
    }
}
