//! The measurement layer every `./x bench` suite uses.
//!
//! This machine has no hardware virtualization, so the figures that mean something are the ones
//! TCG measures exactly; wall-clock time is kept, but only as a labelled ratio against a baseline
//! timed in the same invocation. The layer gives suites four tools:
//!
//! - [`icount_twice`]: boot a guest under `-icount shift=0,sleep=off` (one virtual nanosecond per
//!   guest instruction) twice, read the counters the guest printed, and flag every counter that
//!   differs between the runs by more than [`REPEATABILITY_TOLERANCE`];
//! - [`DeviceTrace`]: turn on QEMU trace events for device traffic (MMIO/PIO accesses by device
//!   region, virtqueue notifications and pops, interrupts injected) and summarise the log of one
//!   run into counts by device and kind ([`parse_trace_log`]). Under KVM each MMIO/PIO access and
//!   each notification is a VM exit, the expensive part of I/O, so these counts stand in for exits;
//! - [`wall_runs`]: whole-process wall times of several guests, interleaved, >= [`MIN_WALL_RUNS`]
//!   runs each, as medians with min/max ([`Spread`]);
//! - [`write_results`] / [`compare`]: `bench/results/<suite>.{json,md}` plus SVG plots
//!   ([`bar_chart_svg`]), keeping the previous JSON as `<suite>.prev.json` so `./x bench --compare`
//!   can show the change of every figure.
//!
//! The plots are a small hand-written SVG bar chart rather than the `plotters` crate: a labelled
//! horizontal bar chart is a page of string formatting, while `plotters` (even with only its SVG
//! backend) adds a dozen crates to the `./x` tool that every command rebuilds on first use.

use crate::bench::{Spread, results_dir};
use crate::qemu::{self, Exit, Outcome, VmConfig};
use crate::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Counters read from one run, by name.
pub type Counters = BTreeMap<String, u64>;

/// Two icount runs of the same image may differ by at most this fraction per counter.
pub const REPEATABILITY_TOLERANCE: f64 = 0.001;

/// The fewest wall-clock runs a median is taken of.
pub const MIN_WALL_RUNS: usize = 5;

/// The counters of two icount runs and which of them did not repeat.
#[derive(Clone, Debug)]
pub struct Repeated {
    /// The first run's counters (the published ones).
    pub counters: Counters,
    /// The second run's counters.
    pub second: Counters,
    /// Counters that differ by more than [`REPEATABILITY_TOLERANCE`] (or exist in one run only).
    pub unrepeatable: Vec<String>,
    /// The first run's console (kept for the record and for failure reports).
    pub console: String,
}

impl Repeated {
    /// True when every counter repeated within the tolerance.
    pub fn repeatable(&self) -> bool {
        self.unrepeatable.is_empty()
    }
}

/// The counters that differ between `a` and `b` by more than [`REPEATABILITY_TOLERANCE`].
pub fn unrepeatable(a: &Counters, b: &Counters) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|name| match (a.get(*name), b.get(*name)) {
            (Some(&x), Some(&y)) => x.abs_diff(y) as f64 > REPEATABILITY_TOLERANCE * x.max(y) as f64,
            _ => true,
        })
        .cloned()
        .collect()
}

/// A failed guest: what ended it and its console, for the report.
pub fn failure(what: &str, outcome: &Outcome) -> crate::Error {
    let tail: Vec<&str> = outcome.console.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    format!(
        "{what} failed: {:?}\n--- last console lines ---\n{}\n--- QEMU stderr ---\n{}",
        outcome.exit,
        tail.join("\n"),
        outcome.stderr.trim()
    )
    .into()
}

/// Boots `config` under icount twice. `read` turns one run's outcome into its counters, or
/// refuses it (a failed guest): then the whole measure fails and nothing is published.
pub fn icount_twice(config: &VmConfig, read: impl Fn(&Outcome) -> Result<Counters>) -> Result<Repeated> {
    let mut config = config.clone();
    config.icount = true; // and so no virtio-rng (`VmConfig::clock_jumps`)
    let first = qemu::run(&config, false)?;
    let counters = read(&first)?;
    let second = read(&qemu::run(&config, false)?)?;
    let unrepeatable = unrepeatable(&counters, &second);
    Ok(Repeated { counters, second, unrepeatable, console: first.console })
}

/// The QEMU trace events that count device traffic, per guest architecture. Events a QEMU
/// binary does not know are skipped by QEMU with a warning, so one list serves both.
pub const DEVICE_EVENTS: &[&str] = &[
    // Every MMIO and PIO access that reaches a device model (RAM accesses do not).
    "memory_region_ops_read",
    "memory_region_ops_write",
    // virtio: the guest kicks a queue, QEMU takes a request, QEMU interrupts the guest.
    "virtio_queue_notify",
    "virtqueue_pop",
    "virtio_notify",
    // Interrupts injected: x86 local APIC / I/O APIC / PIC, aarch64 GICv3 / GICv2.
    "apic_deliver_irq",
    "ioapic_set_irq",
    "pic_interrupt",
    "gicv3_redist_set_irq",
    "gicv3_its_translation_write", // an MSI arriving at the GICv3 ITS (virtio-pci on virt)
    "gicv3_dist_set_irq",
    "gic_set_irq",
];

/// Trace-event counting for one guest run: the event list and the log file.
#[derive(Clone, Debug)]
pub struct DeviceTrace {
    /// Where QEMU writes the trace log (the `log` trace backend, through `-D`).
    pub log: PathBuf,
    events: PathBuf,
}

impl DeviceTrace {
    /// A trace whose files live in `dir` under `name`.
    pub fn new(dir: &Path, name: &str) -> Result<DeviceTrace> {
        std::fs::create_dir_all(dir)?;
        let events = dir.join(format!("{name}.events"));
        std::fs::write(&events, DEVICE_EVENTS.join("\n") + "\n")?;
        Ok(DeviceTrace { log: dir.join(format!("{name}.trace.log")), events })
    }

    /// A trace of every QEMU of a run (the process host starts one per process, with the same
    /// arguments): each writes its own log, `NAME.PID.trace.log` (QEMU puts its pid for the `%d`
    /// of `-D`). Old logs of `name` in `dir` are removed.
    pub fn per_process(dir: &Path, name: &str) -> Result<DeviceTrace> {
        let trace = DeviceTrace::new(dir, name)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if trace.is_process_log(&path) {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(DeviceTrace { log: dir.join(format!("{name}.%d.trace.log")), ..trace })
    }

    fn is_process_log(&self, path: &Path) -> bool {
        let name = self.events.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        path.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
            f.strip_prefix(name).and_then(|rest| rest.strip_prefix('.')).and_then(|rest| rest.strip_suffix(".trace.log")).is_some_and(|pid| pid.parse::<u32>().is_ok())
        })
    }

    /// Every measured window in the logs of every QEMU of the last run ([`DeviceTrace::per_process`]).
    pub fn windows_of_every_process(&self) -> Result<Vec<(String, Counters)>> {
        let dir = self.log.parent().ok_or("a trace log has a directory")?;
        let mut windows = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if self.is_process_log(&path) {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read the trace log {}: {e}", path.display()))?;
                windows.extend(parse_trace_windows(&text));
            }
        }
        Ok(windows)
    }

    /// The QEMU arguments that turn the trace on (append to [`VmConfig::extra_args`]).
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-trace".into(),
            format!("events={}", self.events.display()),
            "-D".into(),
            self.log.display().to_string(),
        ]
    }

    /// Reads and summarises the log the last run wrote.
    pub fn summary(&self) -> Result<Counters> {
        Ok(parse_trace_log(&self.read()?))
    }

    /// Reads and summarises the guest's measured window of the last run ([`parse_trace_window`]).
    pub fn window(&self) -> Result<Counters> {
        parse_trace_window(&self.read()?).ok_or_else(|| {
            format!("the trace log {} has no `{WINDOW_START}` ... `{WINDOW_END}` window on the console", self.log.display()).into()
        })
    }

    /// Every measured window of the last run, in order, with its name ([`parse_trace_windows`]).
    pub fn windows(&self) -> Result<Vec<(String, Counters)>> {
        Ok(parse_trace_windows(&self.read()?))
    }

    fn read(&self) -> Result<String> {
        std::fs::read_to_string(&self.log).map_err(|e| format!("cannot read the trace log {}: {e}", self.log.display()).into())
    }
}

/// The marker lines a guest program prints around its measured window.
pub const WINDOW_START: &str = "[bench] mark start";
/// See [`WINDOW_START`].
pub const WINDOW_END: &str = "[bench] mark end";

/// The byte a trace line writes to a console's data register, if it does: x86 COM1 (`serial`,
/// I/O port 0x3f8) or the aarch64 `virt` PL011 (`pl011`, offset 0 of its 4 KiB page; the trace
/// shows the absolute address).
fn console_data_write(line: &str) -> Option<u8> {
    let device = line.split_once(" name '")?.1.split('\'').next()?;
    let field = |name: &str| line.split_once(&format!(" {name} 0x"))?.1.split_whitespace().next().and_then(|v| u64::from_str_radix(v, 16).ok());
    let address = field("addr")?;
    let is_data_register = match device {
        "serial" => address == 0x3f8,
        "pl011" => address & 0xfff == 0,
        _ => false,
    };
    is_data_register.then(|| field("value").map(|v| v as u8)).flatten()
}

/// The device traffic inside the guest's measured window: from the end of the line
/// [`WINDOW_START`] to the start of the line [`WINDOW_END`], as the guest wrote them to its
/// console (read back from the console's data-register writes in the trace). Counted like
/// [`parse_trace_log`]; `None` if the log does not hold both markers. The first unnamed window
/// of [`parse_trace_windows`].
pub fn parse_trace_window(text: &str) -> Option<Counters> {
    parse_trace_windows(text).into_iter().find(|(name, _)| name.is_empty()).map(|(_, counts)| counts)
}

/// The name of a window marker in a console line: `Some("")` for a line ending with `marker`,
/// `Some(NAME)` for one ending with `marker NAME`. The marker may come after other text: the
/// first console line also holds the UART divisor bytes the kernel wrote through the same
/// register, kernel messages may precede a line, and a server's log line carries its own
/// prefix (time, level).
fn marker_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.rfind(marker)?;
    let rest = &line[at + marker.len()..];
    if rest.is_empty() { Some("") } else { rest.strip_prefix(' ').filter(|name| !name.contains(' ')) }
}

/// Every measured window of the log, in the order they end (see [`parse_trace_window`]): a run
/// that measures several workloads marks each with its own start and end lines, unnamed
/// (`[bench] mark start` ... `[bench] mark end`, one after the other) or named (`[bench] mark
/// start NAME` ... `[bench] mark end NAME`). An end line without its start line is ignored, as
/// is a start line without its end.
pub fn parse_trace_windows(text: &str) -> Vec<(String, Counters)> {
    let mut windows = Vec::new();
    let mut counts = Counters::new();
    let mut line = String::new();
    let mut at_line_start = Counters::new();
    let mut open: BTreeMap<String, Counters> = BTreeMap::new();
    for entry in text.lines() {
        let byte = entry.contains("memory_region_ops_write").then(|| console_data_write(entry)).flatten();
        if byte.is_some() && line.is_empty() {
            // A console line begins: the traffic so far is what came before it.
            at_line_start = counts.clone();
        }
        count_event(&mut counts, entry);
        let Some(byte) = byte else { continue };
        if byte != b'\n' {
            line.push(char::from(byte));
            continue;
        }
        let text = line.trim_end_matches('\r');
        if let Some(name) = marker_name(text, WINDOW_START) {
            open.insert(name.to_string(), counts.clone());
        } else if let Some(name) = marker_name(text, WINDOW_END)
            && let Some(start) = open.remove(name)
        {
            let window: Counters = at_line_start.iter().map(|(k, &v)| (k.clone(), v - start.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect();
            windows.push((name.to_string(), window));
        }
        line.clear();
    }
    windows
}

/// Summarises a QEMU trace log into counts by device and kind:
/// - `mmio <device> read|write` for each `memory_region_ops_*` line of a guest CPU (the device
///   is the memory region's name: `serial`, `virtio-pci-common-virtio-blk`, `hpet`, ...; PIO and
///   MMIO alike); `device-originated <device> ...` for accesses no CPU made (`cpu -1`: MSI
///   writes of device models), which are not exits;
/// - the event name for every other event (`virtio_queue_notify`, `apic_deliver_irq`, ...);
/// - `total device accesses` (all MMIO/PIO traced), `total interrupts injected`, `total virtio
///   notifications` and `total exits` (device accesses + notifications: what would exit to
///   the VMM under KVM) as the headline sums.
///
/// QEMU serves virtio queue notifications through an ioeventfd, which bypasses the
/// `memory_region_ops_write` trace, so notifications are counted from `virtio_queue_notify`.
///
/// Lines may carry the `log` backend's optional `PID@SECONDS:` prefix; other lines are ignored.
pub fn parse_trace_log(text: &str) -> Counters {
    let mut counts = Counters::new();
    text.lines().for_each(|line| count_event(&mut counts, line));
    counts
}

/// Adds one trace-log line to `counts` (see [`parse_trace_log`]).
fn count_event(counts: &mut Counters, line: &str) {
    let line = match line.split_once(':') {
        Some((prefix, rest)) if prefix.contains('@') && !prefix.contains(' ') => rest,
        _ => line,
    };
    let Some(event) = line.split_whitespace().next() else { return };
    if !DEVICE_EVENTS.contains(&event) {
        return;
    }
    let key = match event.strip_prefix("memory_region_ops_") {
        Some(kind) if line.contains(" cpu -1 ") => {
            // No CPU: a device model's own access, e.g. an MSI write to the interrupt controller.
            let device = line.split_once(" name '").and_then(|(_, rest)| rest.split('\'').next()).unwrap_or("?");
            format!("device-originated {device} {kind}")
        }
        Some(kind) => {
            let device = line.split_once(" name '").and_then(|(_, rest)| rest.split('\'').next()).unwrap_or("?");
            *counts.entry("total device accesses".into()).or_default() += 1;
            *counts.entry("total exits".into()).or_default() += 1;
            format!("mmio {device} {kind}")
        }
        None => {
            if event.contains("irq") || event == "pic_interrupt" || event == "gicv3_its_translation_write" {
                *counts.entry("total interrupts injected".into()).or_default() += 1;
            }
            if event == "virtio_queue_notify" {
                // The notify write itself goes to an ioeventfd, which skips the MMIO trace.
                *counts.entry("total virtio notifications".into()).or_default() += 1;
                *counts.entry("total exits".into()).or_default() += 1;
            }
            event.to_string()
        }
    };
    *counts.entry(key).or_default() += 1;
}

/// Boots each `(label, config)` `runs` times (at least [`MIN_WALL_RUNS`]), interleaved so that
/// a slow moment of the shared host hits all of them alike, and returns their wall-time spreads.
/// `accept` checks every run; a run it refuses fails the measure.
pub fn wall_runs(
    guests: &[(&str, &VmConfig)],
    runs: usize,
    accept: impl Fn(&str, &Outcome) -> bool,
) -> Result<Vec<Spread>> {
    let mut samples = vec![Vec::new(); guests.len()];
    for _ in 0..runs.max(MIN_WALL_RUNS) {
        for ((label, config), times) in guests.iter().zip(&mut samples) {
            let outcome = qemu::run(config, false)?;
            if !accept(label, &outcome) {
                return Err(failure(&format!("wall-clock run of {label}"), &outcome));
            }
            times.push(outcome.wall);
        }
    }
    Ok(samples.iter().map(|times| Spread::of(times)).collect())
}

/// Median, minimum and maximum of `values` (NaN when empty).
pub fn median_min_max(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    (median, values[0], values[n - 1])
}

/// True for a run that ended with the guest's exit code 0.
pub fn exited_cleanly(outcome: &Outcome) -> bool {
    outcome.exit == Exit::Code(0)
}

/// Writes `bench/results/<suite>.json` and `.md` and the plots (`(file name, SVG)`), first
/// keeping the previous JSON as `<suite>.prev.json` for `./x bench --compare`.
pub fn write_results(suite: &str, json: &Value, markdown: &str, plots: &[(String, String)]) -> Result<()> {
    let dir = results_dir()?;
    let current = dir.join(format!("{suite}.json"));
    if current.exists() {
        std::fs::rename(&current, dir.join(format!("{suite}.prev.json")))?;
    }
    std::fs::write(&current, serde_json::to_string_pretty(json)? + "\n")?;
    std::fs::write(dir.join(format!("{suite}.md")), markdown)?;
    for (name, svg) in plots {
        std::fs::write(dir.join(name), svg)?;
    }
    eprintln!("==> wrote bench/results/{suite}.json, {suite}.md{}", plots.iter().map(|(n, _)| format!(", {n}")).collect::<String>());
    Ok(())
}

/// Every number in `json` by its path (`a.b.3.c`).
pub fn flatten_numbers(json: &Value) -> BTreeMap<String, f64> {
    fn walk(value: &Value, path: &str, out: &mut BTreeMap<String, f64>) {
        let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
        match value {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.insert(path.to_string(), x);
                }
            }
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, &join(k), out)),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(v, &join(&i.to_string()), out)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(json, "", &mut out);
    out
}

/// The change of every figure from `previous` to `current`, one line each: changed, new and
/// dropped figures; unchanged ones are counted at the end.
pub fn compare(previous: &Value, current: &Value) -> String {
    let (old, new) = (flatten_numbers(previous), flatten_numbers(current));
    let mut out = String::new();
    let mut unchanged = 0;
    for (path, &now) in &new {
        match old.get(path) {
            Some(&was) if was == now => unchanged += 1,
            Some(&was) => {
                let change = if was == 0.0 { "new nonzero".to_string() } else { format!("{:+.2}%", (now - was) / was.abs() * 100.0) };
                let _ = writeln!(out, "{path}: {was} -> {now} ({change})");
            }
            None => {
                let _ = writeln!(out, "{path}: (new) {now}");
            }
        }
    }
    for (path, was) in old.iter().filter(|(p, _)| !new.contains_key(*p)) {
        let _ = writeln!(out, "{path}: {was} -> (gone)");
    }
    let _ = writeln!(out, "{unchanged} figures unchanged");
    out
}

/// `./x bench --compare [SUITE]`: every suite's (or one suite's) change against its previous
/// results file.
pub fn compare_main(suite: Option<&str>) -> Result<i32> {
    let dir = results_dir()?;
    let mut suites: Vec<String> = match suite {
        Some(s) => vec![s.to_string()],
        None => std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".prev.json").map(String::from))
            .collect(),
    };
    suites.sort();
    if suites.is_empty() {
        println!("no previous results in bench/results/ (a suite keeps one as <suite>.prev.json when it writes)");
    }
    for suite in suites {
        let read = |name: String| -> Result<Value> {
            let path = dir.join(&name);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read bench/results/{name}: {e}"))?;
            Ok(serde_json::from_str(&text)?)
        };
        let (previous, current) = (read(format!("{suite}.prev.json"))?, read(format!("{suite}.json"))?);
        println!("## {suite}: bench/results/{suite}.prev.json -> {suite}.json\n{}", compare(&previous, &current));
    }
    Ok(0)
}

/// Escapes text for SVG.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart: one labelled bar per `(label, value)`, scaled to the largest value,
/// each bar annotated with its value and `unit`.
pub fn bar_chart_svg(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    const LABEL_WIDTH: usize = 260;
    const BAR_AREA: f64 = 420.0;
    const ROW: usize = 26;
    let height = 50 + bars.len() * ROW;
    let largest = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        LABEL_WIDTH + BAR_AREA as usize + 140,
        xml_escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 40 + i * ROW;
        let width = (value / largest * BAR_AREA).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{LABEL_WIDTH}\" y=\"{y}\" width=\"{width:.1}\" height=\"{}\" fill=\"#4477aa\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{} {}</text>\n",
            LABEL_WIDTH - 8,
            y + 15,
            xml_escape(label),
            ROW - 6,
            LABEL_WIDTH as f64 + width + 6.0,
            y + 15,
            format_figure(*value),
            xml_escape(unit)
        );
    }
    svg + "</svg>\n"
}

/// A figure for a table or plot: integers as integers, others with two decimals.
pub fn format_figure(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { format!("{value:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console bytes of `text` as `serial` data-register writes, one trace line each.
    fn console_lines(text: &str) -> String {
        text.bytes().map(|b| format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value {b:#x} size 1 name 'serial'\n")).collect()
    }

    #[test]
    fn per_process_traces_gather_every_qemus_windows_and_only_theirs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipe.1.trace.log"), "stale").unwrap();
        let trace = DeviceTrace::per_process(dir.path(), "pipe").unwrap();
        assert!(!dir.path().join("pipe.1.trace.log").exists(), "old logs go");
        assert!(trace.qemu_args().iter().any(|a| a.ends_with("pipe.%d.trace.log")), "{:?}", trace.qemu_args());
        let notify = "virtio_queue_notify vdev 0x1 n 0 vq 0x2\n";
        let reader = console_lines("[bench] mark start pipe-reader\n") + notify + notify + &console_lines("[bench] mark end pipe-reader\n");
        let writer = console_lines("[bench] mark start pipe-writer\n") + notify + &console_lines("[bench] mark end pipe-writer\n");
        std::fs::write(dir.path().join("pipe.100.trace.log"), reader).unwrap();
        std::fs::write(dir.path().join("pipe.101.trace.log"), writer).unwrap();
        std::fs::write(dir.path().join("other.102.trace.log"), console_lines("[bench] mark start x\n[bench] mark end x\n")).unwrap();
        std::fs::write(dir.path().join("pipe.notes.trace.log"), "not a pid").unwrap();
        let mut windows = trace.windows_of_every_process().unwrap();
        windows.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = windows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["pipe-reader", "pipe-writer"]);
        assert_eq!(windows[0].1.get("total virtio notifications"), Some(&2));
        assert_eq!(windows[1].1.get("total virtio notifications"), Some(&1));
    }

    #[test]
    fn trace_log_counts_by_device_and_kind() {
        let log = "\
memory_region_ops_write cpu 0 mr 0x55d0 addr 0x3f8 value 0x48 size 1 name 'serial'
memory_region_ops_read cpu 0 mr 0x55d0 addr 0x3fd value 0x60 size 1 name 'serial'
1234@1700000000.000001:memory_region_ops_write cpu 0 mr 0x1 addr 0x10 value 0x0 size 2 name 'virtio-pci-notify-virtio-blk'
virtio_queue_notify vdev 0x1 n 0 vq 0x2
virtqueue_pop vq 0x2 elem 0x3 in_num 2 out_num 1
virtio_notify vdev 0x1 vq 0x2
apic_deliver_irq dest 0 dest_mode 0 delivery_mode 0 vector 34 trigger_mode 0
memory_region_ops_write cpu -1 mr 0x5 addr 0xfee00000 value 0x0 size 4 name 'apic-msi'
some unrelated line
";
        let counts = parse_trace_log(log);
        assert_eq!(counts["mmio serial write"], 1);
        assert_eq!(counts["mmio serial read"], 1);
        assert_eq!(counts["mmio virtio-pci-notify-virtio-blk write"], 1);
        assert_eq!(counts["total device accesses"], 3);
        assert_eq!(counts["total exits"], 4);
        assert_eq!(counts["virtio_queue_notify"], 1);
        assert_eq!(counts["total virtio notifications"], 1);
        assert_eq!(counts["virtqueue_pop"], 1);
        assert_eq!(counts["apic_deliver_irq"], 1);
        assert_eq!(counts["total interrupts injected"], 1);
        assert_eq!(counts["device-originated apic-msi write"], 1);
        assert_eq!(counts.len(), 12);
    }

    #[test]
    fn window_lies_between_the_console_markers() {
        let mut log = String::new();
        let mut say = |text: &str| {
            for byte in text.bytes() {
                log += &format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value 0x{byte:x} size 1 name 'serial'\n");
            }
        };
        say("\x0c\x0c[bench] mark start\r\n");
        let before_end = "virtio_queue_notify vdev 0x1 n 0 vq 0x2\nvirtio_queue_notify vdev 0x1 n 0 vq 0x2\n";
        let mut log = log + before_end;
        for byte in "[bench] mark end\nbye\n".bytes() {
            log += &format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value 0x{byte:x} size 1 name 'serial'\n");
        }
        let window = parse_trace_window(&log).unwrap();
        let expected = [("total exits", 2), ("total virtio notifications", 2), ("virtio_queue_notify", 2)];
        assert_eq!(window, expected.map(|(k, v)| (k.to_string(), v)).into());
        assert_eq!(parse_trace_window("nothing\n"), None);
    }

    #[test]
    fn named_windows_are_counted_apart() {
        let mut log = String::new();
        let say = |log: &mut String, text: &str| {
            for byte in text.bytes() {
                *log += &format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value 0x{byte:x} size 1 name 'serial'\n");
            }
        };
        let notify = "virtio_queue_notify vdev 0x1 n 0 vq 0x2\n";
        say(&mut log, "[bench] mark start create\n");
        log += &notify.repeat(3);
        say(&mut log, "[bench] mark end create\n[bench] mark start stat\n");
        log += notify;
        say(&mut log, "[bench] mark end stat\n[bench] mark start lost\n");
        log += notify;
        let windows = parse_trace_windows(&log);
        let names: Vec<&str> = windows.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["create", "stat"], "an unended window is left out");
        assert_eq!(windows[0].1["total virtio notifications"], 3);
        assert_eq!(windows[1].1["total exits"], 1, "the console lines are not inside the windows");
        assert_eq!(parse_trace_window(&log), None, "no unnamed window");
    }

    #[test]
    fn windows_are_found_in_order() {
        fn say(log: &mut String, text: &str) {
            for byte in text.bytes() {
                *log += &format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value 0x{byte:x} size 1 name 'serial'\n");
            }
        }
        let notify = "virtio_queue_notify vdev 0x1 n 0 vq 0x2\n";
        let mut log = String::new();
        // An end without a start is ignored; a server's log prefix may precede a marker.
        say(&mut log, "[bench] mark end\n1:M 01 Jan 00:00:01.000 # DEBUG LOG: [bench] mark start\n");
        log += notify;
        say(&mut log, "x [bench] mark end\n[bench] mark start\n");
        log += &notify.repeat(3);
        say(&mut log, "[bench] mark end\n");
        let windows = parse_trace_windows(&log);
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0].1["virtio_queue_notify"], 1);
        assert_eq!(windows[1].1["virtio_queue_notify"], 3);
        assert_eq!(windows[1].1["total exits"], 3);
        assert_eq!(parse_trace_window(&log), Some(windows[0].1.clone()));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_min_max(vec![3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_min_max(vec![4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert!(median_min_max(Vec::new()).0.is_nan());
    }

    #[test]
    fn repeatability_allows_a_tenth_of_a_percent() {
        let a: Counters = [("x".to_string(), 100_000), ("y".to_string(), 5)].into();
        let mut b = a.clone();
        b.insert("x".into(), 100_100);
        assert!(unrepeatable(&a, &b).is_empty());
        b.insert("x".into(), 100_101);
        assert_eq!(unrepeatable(&a, &b), ["x"]);
        b.insert("z".into(), 1);
        assert_eq!(unrepeatable(&a, &b), ["x", "z"]);
    }

    #[test]
    fn comparison_lists_every_changed_figure() {
        let old = serde_json::json!({ "a": { "n": 100, "same": 1 }, "list": [1, 2], "gone": 3, "text": "x" });
        let new = serde_json::json!({ "a": { "n": 110, "same": 1 }, "list": [1, 4], "added": 5, "text": "y" });
        let report = compare(&old, &new);
        assert!(report.contains("a.n: 100 -> 110 (+10.00%)"), "{report}");
        assert!(report.contains("list.1: 2 -> 4 (+100.00%)"), "{report}");
        assert!(report.contains("added: (new) 5"), "{report}");
        assert!(report.contains("gone: 3 -> (gone)"), "{report}");
        assert!(report.contains("2 figures unchanged"), "{report}");
    }

    #[test]
    fn bar_chart_scales_to_the_largest_bar_and_escapes_text() {
        let svg = bar_chart_svg("a < b", "ms", &[("big".into(), 200.0), ("half & half".into(), 100.0)]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("a &lt; b") && svg.contains("half &amp; half"));
        assert!(svg.contains("width=\"420.0\"") && svg.contains("width=\"210.0\""), "{svg}");
        assert!(svg.contains("200 ms") && svg.trim_end().ends_with("</svg>"));
    }
}
