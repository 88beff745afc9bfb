//! `./x bench boot`: how fast and how small the default image is.
//!
//! 1. Guest instructions from the image's first instruction to `main` and to exit, under
//!    `-icount shift=0,sleep=off` (deterministic: run twice, must agree). On x86_64 the TSC
//!    follows QEMU's virtual clock under icount, one tick per instruction, so the
//!    `[boot-stats]` tick counts are instruction counts (checked: the counter calibrates to 1 GHz).
//! 2. Whole-process wall time of `hello` against the floor kernel (one byte to the serial port,
//!    then exit), interleaved runs, same machine, medians; labelled with the accelerator. Both
//!    boot on the same QEMU command line (`microvm,rtc=on,pit=on`), so what QEMU spends on its
//!    devices is in both and the ratio is what libos adds.
//! 3. Image size, and the smallest guest RAM `hello` boots in.

//!
//! Then the same for aarch64 (see [`super::boot_aarch64`]), appended to the report.

use super::{Spread, host_facts, round};
use crate::accel::{self, Accel};
use crate::arch::Arch;
use crate::qemu::{self, Exit, VmConfig};
use crate::{Result, build, floor};
use std::time::Duration;

pub(super) const TARGET_ENTRY_TO_MAIN: u64 = 300_000;
pub(super) const TARGET_WALL_RATIO: f64 = 1.10;
pub(super) const TARGET_IMAGE_BYTES: u64 = 128 * 1024;
pub(super) const TARGET_RAM_MIB: u64 = 8;
pub(super) const GREETING: &str = "Hello from libos";

pub(super) fn ticks(console: &str, label: &str) -> Option<u64> {
    console.lines().find_map(|l| l.strip_prefix(&format!("[boot-stats] {label} ticks: "))?.trim().parse().ok())
}

pub(super) fn counter_hz(console: &str) -> Option<u64> {
    console.lines().find_map(|l| l.strip_prefix("[boot-stats] counter: ")?.split(' ').next()?.parse().ok())
}

/// The `[boot-stats]` counters of a successful boot: `entry-to-main`, `entry-to-exit` (ticks)
/// and `counter-hz`; a failed boot is an error carrying its console.
pub(super) fn boot_stats(what: &str, outcome: &qemu::Outcome) -> Result<crate::measure::Counters> {
    if outcome.exit != Exit::Code(0) {
        return Err(crate::measure::failure(what, outcome));
    }
    let missing = |line: &str| format!("{what}: no `[boot-stats] {line}` line in the console");
    Ok([
        ("entry-to-main", ticks(&outcome.console, "entry-to-main").ok_or_else(|| missing("entry-to-main ticks"))?),
        ("entry-to-exit", ticks(&outcome.console, "entry-to-exit").ok_or_else(|| missing("entry-to-exit ticks"))?),
        ("counter-hz", counter_hz(&outcome.console).ok_or_else(|| missing("counter"))?),
    ]
    .map(|(name, value)| (name.to_string(), value))
    .into())
}

/// Wall-time spreads of the floor kernel and of `hello`, interleaved runs (each must exit 0;
/// `hello` must also greet).
pub(super) fn wall_against_floor(floor: &VmConfig, hello: &VmConfig, runs: usize) -> Result<(Spread, Spread)> {
    let spreads = crate::measure::wall_runs(&[("floor kernel", floor), ("hello", hello)], runs, |label, outcome| {
        outcome.exit == Exit::Code(0) && (label != "hello" || outcome.console.contains(GREETING))
    })?;
    Ok((spreads[0], spreads[1]))
}

/// The smallest guest RAM, in MiB (1..=64), that `hello` boots and greets in, by bisection. A
/// size the image does not even load into is refused by the runner: that counts as "does not
/// boot".
pub(super) fn smallest_ram_mib(hello: &VmConfig) -> Result<u64> {
    let boots_in = |mib: u64| -> bool {
        let mut config = hello.clone();
        config.memory = format!("{mib}M");
        config.timeout = Duration::from_secs(30);
        qemu::run(&config, false).is_ok_and(|o| o.exit == Exit::Code(0) && o.console.contains(GREETING))
    };
    let (mut low, mut high) = (1u64, 64u64); // boots in `high`, search down
    if !boots_in(high) {
        return Err(format!("hello does not boot in {high} MiB").into());
    }
    while high - low > 1 {
        let mid = (low + high) / 2;
        if boots_in(mid) { high = mid } else { low = mid }
    }
    Ok(high)
}

/// The boot targets: name, met, and what was measured.
pub(super) fn targets(to_main: u64, ratio: f64, file_bytes: u64, smallest_mib: u64) -> [(&'static str, bool, String); 4] {
    [
        ("entry-to-main instructions", to_main <= TARGET_ENTRY_TO_MAIN, format!("{to_main} <= {TARGET_ENTRY_TO_MAIN}")),
        ("wall ratio hello/floor", ratio <= TARGET_WALL_RATIO, format!("{ratio:.2} <= {TARGET_WALL_RATIO}")),
        ("image size", file_bytes <= TARGET_IMAGE_BYTES, format!("{file_bytes} <= {TARGET_IMAGE_BYTES} bytes")),
        ("boots in 8 MiB", smallest_mib <= TARGET_RAM_MIB, format!("smallest {smallest_mib} MiB <= {TARGET_RAM_MIB} MiB")),
    ]
}

/// Bytes the loader copies: the sum of the PT_LOAD segments' file sizes.
fn loaded_bytes(image: &[u8]) -> u64 {
    crate::elf::load_segments(image).iter().map(|s| s.file_size).sum()
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let mut runs = 10usize;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            other => return Err(format!("unknown option `{other}` for bench boot").into()),
        }
    }
    let runs = runs.max(10);
    let arch = Arch::X86_64;
    let image = build::build_app("hello", arch, false)?;
    let choice = accel::choose(arch, None)?;
    eprintln!("==> accelerator: {}", choice.reason);

    // 1. Instructions, deterministic.
    eprintln!("==> instructions to main and to exit (icount, 2 runs)");
    let mut icount = VmConfig::new(arch, image.clone());
    icount.accel = Accel::Tcg;
    icount.icount = true;
    icount.cmdline = "bootstats".into();
    icount.timeout = Duration::from_secs(60);
    let repeated = crate::measure::icount_twice(&icount, |outcome| boot_stats("hello under icount", outcome))?;
    let (to_main, to_exit, hz) = (repeated.counters["entry-to-main"], repeated.counters["entry-to-exit"], repeated.counters["counter-hz"]);
    let deterministic = repeated.counters == repeated.second;
    // Under icount shift=0 the TSC ticks once per instruction: it must calibrate to ~1 GHz.
    let ticks_are_instructions = hz.abs_diff(1_000_000_000) < 10_000_000;

    // 2. Wall time against the floor, interleaved.
    eprintln!("==> wall time: hello vs floor kernel, {runs} interleaved runs each ({})", choice.accel);
    let floor_image = floor::floor_image()?;
    let mut floor_config = VmConfig::new(arch, floor_image.clone());
    floor_config.accel = choice.accel;
    let mut hello_config = VmConfig::new(arch, image.clone());
    hello_config.accel = choice.accel;
    let (floor_wall, hello_wall) = wall_against_floor(&floor_config, &hello_config, runs)?;
    let ratio = hello_wall.median / floor_wall.median;

    // 3. Size and memory.
    let bytes = std::fs::read(&image)?;
    let file_bytes = bytes.len() as u64;
    let loaded = loaded_bytes(&bytes);
    eprintln!("==> smallest guest RAM");
    let smallest_mib = smallest_ram_mib(&hello_config)?;

    let targets = targets(to_main, ratio, file_bytes, smallest_mib);
    let json = serde_json::json!({
        "suite": "boot",
        "arch": arch.name(),
        "host": host_facts(),
        "accelerator": choice.accel.to_string(),
        "accelerator_reason": choice.reason,
        "instructions": {
            "method": "QEMU TCG -icount shift=0,sleep=off; [boot-stats] TSC ticks (1 tick = 1 instruction)",
            "entry_to_main": to_main,
            "entry_to_exit": to_exit,
            "counter_hz_under_icount": hz,
            "ticks_are_instructions": ticks_are_instructions,
            "deterministic_over_2_runs": deterministic,
        },
        "wall": {
            "method": format!("whole QEMU process, microvm + qboot, 64 MiB, {runs} interleaved runs each"),
            "accelerator": choice.accel.to_string(),
            "floor": floor_wall.json(),
            "hello": hello_wall.json(),
            "ratio_of_medians": round(ratio),
            "floor_command": format!("{:?}", floor_config.command()),
        },
        "image": { "file_bytes": file_bytes, "loaded_bytes": loaded },
        "memory": { "smallest_mib": smallest_mib },
        "targets": targets.iter().map(|(name, met, detail)| serde_json::json!({"target": name, "met": met, "detail": detail})).collect::<Vec<_>>(),
    });
    let accel = choice.accel;
    let mut md = String::new();
    md += "# Boot benchmark (`./x bench boot`)\n\n";
    md += &format!("x86_64 `hello`, QEMU microvm + qboot. Host: {}.\n\n", json["host"]["cpu"].as_str().unwrap_or("?"));
    md += "| measure | value |\n|---|---|\n";
    md += &format!("| guest instructions, entry to `main` (icount, deterministic: {deterministic}) | **{to_main}** |\n");
    md += &format!("| guest instructions, entry to exit (includes 1 ms TSC calibration) | {to_exit} |\n");
    md += &format!("| wall, floor kernel ({accel}, median of {runs}) | {:.1} ms (min {:.1}, max {:.1}) |\n", floor_wall.median, floor_wall.min, floor_wall.max);
    md += &format!("| wall, `hello` ({accel}, median of {runs}) | {:.1} ms (min {:.1}, max {:.1}) |\n", hello_wall.median, hello_wall.min, hello_wall.max);
    md += &format!("| wall ratio `hello` / floor ({accel}) | **{ratio:.2}x** |\n");
    md += &format!("| image file size | {file_bytes} bytes ({} KiB); {loaded} bytes loaded |\n", file_bytes.div_ceil(1024));
    md += &format!("| smallest guest RAM | {smallest_mib} MiB |\n\n");
    md += "| target | met | measured |\n|---|---|---|\n";
    for (name, met, detail) in &targets {
        md += &format!("| {name} | {} | {detail} |\n", if *met { "yes" } else { "**no**" });
    }
    // The aarch64 part must not lose the x86_64 figures if it fails.
    let (aarch64_json, aarch64_md) = super::boot_aarch64::run(runs).unwrap_or_else(|e| {
        eprintln!("./x: the aarch64 boot benchmark failed: {e}");
        (serde_json::json!({ "error": e.to_string() }), format!("\n## aarch64\n\nfailed: {e}\n"))
    });
    let mut json = json;
    let aarch64_ratio = aarch64_json["wall"]["ratio_of_medians"].as_f64();
    json["aarch64"] = aarch64_json;
    md += &aarch64_md;
    let mut bars = vec![("x86_64 hello / floor".to_string(), round(ratio))];
    bars.extend(aarch64_ratio.map(|r| ("aarch64 hello / floor".to_string(), r)));
    md += "\n![wall ratio](boot-wall-ratio.svg)\n";
    let plot = crate::measure::bar_chart_svg(&format!("Boot wall time, libos hello / floor kernel ({accel})"), "x", &bars);
    crate::measure::write_results("boot", &json, &md, &[("boot-wall-ratio.svg".into(), plot)])?;
    print!("{md}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_boot_stats_lines() {
        let console = "[boot-stats] entry-to-main ticks: 56507\nhi\n[boot-stats] entry-to-exit ticks: 99\n[boot-stats] counter: 1000004534 Hz; entry at 1 ns\n";
        assert_eq!(ticks(console, "entry-to-main"), Some(56507));
        assert_eq!(ticks(console, "entry-to-exit"), Some(99));
        assert_eq!(counter_hz(console), Some(1_000_004_534));
        assert_eq!(ticks("nothing", "entry-to-main"), None);
    }

    #[test]
    fn loaded_bytes_sums_load_segments() {
        let elf = floor::pvh_elf(&[0x90; 10]);
        assert_eq!(loaded_bytes(&elf), 10);
        assert_eq!(loaded_bytes(b"not an elf"), 0);
    }
}
