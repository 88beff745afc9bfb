//! `./x bench servers`: a real server driven by its own project's benchmark tool, on libos and
//! in the Linux guest, in one run (issue 14's second target).
//!
//! The server is redis 7.0.15 from Debian's source package, the **same static musl file** on
//! both systems ([`crate::servers::REDIS`], `./x build-server redis`): on libos it runs through
//! posix-shim's ELF loader (the elf-runner image of the integration tests), in the Linux guest
//! from the initramfs, next to `servers/rootfs/srv/redis.conf` (appended to the baseline's
//! initramfs as a second archive, [`LinuxGuest::with_files`]). Both get `redis-server
//! /srv/redis.conf --enable-debug-command yes` (the option lets the harness write its window
//! marks into the server's log) and the same card on the same tap as `./x bench net`
//! (virtio-net-pci on x86_64 `q35`, virtio-mmio on aarch64 `virt` GICv3).
//!
//! The tool is the host's `redis-benchmark` (Debian's redis-tools, the same version), run
//! inside the tap's namespace with fixed settings, one test per invocation:
//! `redis-benchmark -h 10.0.2.15 -p 6379 -t set|get -n N -c 1 -P 1 --csv` (one connection, one
//! request in flight: every request is a round trip through both stacks).
//!
//! Per system and arch, two boots:
//!
//! 1. **icount + device trace** (`-icount shift=0,sleep=on`, as the TCP benches: the host paces
//!    the requests): redis is unmodified, so it cannot bracket its own window; the harness
//!    does, from outside. A control connection (kept open, idle) sends `DEBUG LOG "[bench]
//!    mark start"`, which redis writes to its log on the console, where the trace finds it
//!    again as for every other bench ([`crate::measure::parse_trace_windows`]); then the
//!    harness reads QEMU's **instruction counter** over QMP (`query-replay`, which reports
//!    `icount` whenever icount is on), runs the test, reads the counter again and marks the end.
//!    That counter counts executed guest instructions only: while the guest is halted QEMU
//!    advances the virtual clock through its idle bias, not through the instruction count, so
//!    the halted (idle) time is left out exactly, on both systems alike, without asking the
//!    guest (the netecho/tcp_bench figures get the same by subtracting the guest's own idle
//!    ticks). What stays in: everything both guests execute meanwhile, the benchmark's own
//!    connection set-up (`CONFIG GET save`/`appendonly` on a second connection, one connect and
//!    close) and redis's 10 Hz timer (`serverCron`) and the kernel's timers for as long as the
//!    window lasts. The rate of the latter is measured too (instructions per second of a 2 s
//!    idle stretch before the windows) and reported, not subtracted;
//! 2. **plain TCG**: the same tests `--runs` times each, interleaved; requests/s as
//!    redis-benchmark reports them, median (min, max). Wall-clock under TCG, labelled so.
//!
//! Writes `bench/results/servers.{json,md}`. A suite of its own rather than a part of `./x
//! bench net`: its server is a third-party program driven by a third-party tool and measured
//! from outside the guest (QMP), its runs take minutes and should not rewrite the 25-minute
//! `net.json` when run alone, and lighttpd with `ab` fits next to it later.

use super::linux::{command_line, per_operation};
use super::net::{machine, transport};
use super::{host_facts, round};
use crate::accel::Accel;
use crate::arch::Arch;
use crate::linux::{Cpio, LinuxGuest, check_run};
use crate::measure::{self, DeviceTrace, WINDOW_END, WINDOW_START, failure};
use crate::net::NetConfig;
use crate::netns::{GUEST_ADDRESS, GUEST_IP, GUEST_IP_OPTION, Netns, TAP};
use crate::qemu::{self, Exit, Outcome, Running, VirtioTransport, VmConfig};
use crate::servers::REDIS;
use crate::Result;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// One redis-benchmark test as run: its CSV result, the guest instructions it took, its wall time.
type TestRun = (CsvResult, u64, Duration);

/// redis's port in both guests (`servers/rootfs/srv/redis.conf`).
const PORT: u16 = 6379;
/// The redis-benchmark tests measured, one invocation (and one window) each, in this order.
const TESTS: [&str; 2] = ["set", "get"];
/// The server's arguments after its program (the same on both systems).
const SERVER_ARGS: [&str; 3] = ["/srv/redis.conf", "--enable-debug-command", "yes"];
/// How long the idle stretch lasts whose instruction rate is reported.
const IDLE_STRETCH: Duration = Duration::from_secs(2);

/// What a run of the suite does.
#[derive(Clone, Debug, PartialEq)]
struct Options {
    arches: Vec<Arch>,
    /// Requests per test (`redis-benchmark -n`).
    requests: u64,
    /// Wall-clock runs of each test (median of these).
    runs: usize,
    linux: bool,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Options> {
        let mut options = Options {
            arches: Arch::ALL.into_iter().filter(|a| a.is_supported()).collect(),
            requests: 20_000,
            runs: measure::MIN_WALL_RUNS,
            linux: true,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            let positive = |v: String| -> Result<u64> {
                match v.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{arg} wants a positive number, not `{v}`").into()),
                }
            };
            match arg.as_str() {
                "--arch" => options.arches = Arch::parse_list(&value()?)?,
                "--requests" => options.requests = positive(value()?)?,
                "--runs" => options.runs = (positive(value()?)? as usize).max(measure::MIN_WALL_RUNS),
                "--no-linux" => options.linux = false,
                other => return Err(format!("unknown option `{other}` for bench servers (--arch A|all, --requests N, --runs N, --no-linux)").into()),
            }
        }
        Ok(options)
    }
}

/// The arguments of one redis-benchmark invocation (without the program).
fn benchmark_args(test: &str, requests: u64) -> Vec<String> {
    let fixed = ["-h", GUEST_IP, "-p", &PORT.to_string(), "-t", test, "-n", &requests.to_string(), "-c", "1", "-P", "1", "--csv"];
    fixed.map(String::from).into()
}

/// One result line of `redis-benchmark --csv`.
#[derive(Clone, Debug, PartialEq)]
struct CsvResult {
    /// The test's name as redis-benchmark prints it (`SET`, `GET`).
    test: String,
    /// Requests per second.
    rps: f64,
    /// Mean latency, ms.
    avg_latency_ms: f64,
    /// Median latency, ms.
    p50_latency_ms: f64,
    /// 99th-percentile latency, ms.
    p99_latency_ms: f64,
}

/// The fields of one CSV line (redis-benchmark quotes every field; quotes are removed, commas
/// inside quotes kept).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.trim_end_matches(['\r', '\n']).chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields
}

/// Parses `redis-benchmark --csv` output: a header line naming the columns (`test`, `rps`,
/// `avg_latency_ms`, ...), then one line per test. Columns are found by name, so a later
/// version's extra columns do not matter.
fn parse_benchmark_csv(text: &str) -> std::result::Result<Vec<CsvResult>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header = csv_fields(lines.next().ok_or("redis-benchmark printed nothing")?);
    let column = |name: &str| header.iter().position(|h| h == name).ok_or_else(|| format!("no `{name}` column in {header:?}"));
    let (test, rps, avg, p50, p99) = (column("test")?, column("rps")?, column("avg_latency_ms")?, column("p50_latency_ms")?, column("p99_latency_ms")?);
    lines
        .map(|line| {
            let fields = csv_fields(line);
            let number = |i: usize| -> std::result::Result<f64, String> {
                fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| format!("no number in column {} of {line:?}", header[i]))
            };
            let name = fields.get(test).cloned().ok_or_else(|| format!("no test name in {line:?}"))?;
            Ok(CsvResult { test: name, rps: number(rps)?, avg_latency_ms: number(avg)?, p50_latency_ms: number(p50)?, p99_latency_ms: number(p99)? })
        })
        .collect()
}

/// A redis command as RESP, the array of bulk strings every redis client sends.
fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A one-line RESP reply: `+OK` is `Ok("OK")`, `-ERR ...` an error; other kinds (integers,
/// bulk headers) come back whole.
fn parse_status_reply(line: &str) -> std::result::Result<String, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    match line.split_at_checked(1) {
        Some(("+", status)) => Ok(status.to_string()),
        Some(("-", error)) => Err(error.to_string()),
        Some(_) => Ok(line.to_string()),
        None => Err("an empty reply".into()),
    }
}

/// The harness's own connection to redis: window marks in the server's log, and the final
/// `SHUTDOWN NOSAVE`. Opened once and idle while the tests run.
struct Control {
    reader: BufReader<TcpStream>,
}

impl Control {
    /// Connects from inside `netns` (a socket keeps the namespace it was made in).
    fn connect(netns: &Netns) -> Result<Control> {
        let guest = SocketAddr::new(GUEST_IP.parse().map_err(|e| format!("{e}"))?, PORT);
        let stream = netns.run(move || TcpStream::connect_timeout(&guest, Duration::from_secs(60)))?.map_err(|e| format!("connecting to redis at {guest}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.set_nodelay(true)?;
        Ok(Control { reader: BufReader::new(stream) })
    }

    /// Sends a command and reads its one-line reply.
    fn call(&mut self, args: &[&str]) -> Result<String> {
        self.reader.get_mut().write_all(&resp_command(args))?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(|e| format!("redis's reply to {args:?}: {e}"))?;
        parse_status_reply(&line).map_err(|e| format!("redis answered {args:?} with an error: {e}").into())
    }

    /// Writes `[bench] mark start|end` into the server's log (on the guest's console).
    fn mark(&mut self, which: &str) -> Result<()> {
        let marker = if which == "start" { WINDOW_START } else { WINDOW_END };
        self.call(&["DEBUG", "LOG", marker]).map(drop)
    }

    /// `SHUTDOWN NOSAVE`: redis exits 0 and closes the connection instead of answering.
    fn shut_down(mut self) -> Result<()> {
        self.reader.get_mut().write_all(&resp_command(&["SHUTDOWN", "NOSAVE"]))?;
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        Ok(())
    }
}

/// The `return` of a QMP reply line: `None` for lines that are not replies (the greeting,
/// asynchronous events), `Some(Err)` for an `error` reply.
fn qmp_reply(line: &str) -> Option<std::result::Result<Value, String>> {
    let value: Value = serde_json::from_str(line).ok()?;
    if let Some(ret) = value.get("return") {
        return Some(Ok(ret.clone()));
    }
    value.get("error").map(|e| Err(e["desc"].as_str().unwrap_or("unknown QMP error").to_string()))
}

/// A QMP connection to the QEMU of a run (`-qmp unix:PATH,server=on,wait=off`).
struct Qmp {
    reader: BufReader<UnixStream>,
}

impl Qmp {
    /// The QEMU arguments of a QMP socket at `path`.
    fn qemu_args(path: &Path) -> Vec<String> {
        vec!["-qmp".into(), format!("unix:{},server=on,wait=off", path.display())]
    }

    fn connect(path: &Path) -> Result<Qmp> {
        let stream = UnixStream::connect(path).map_err(|e| format!("connecting to QMP at {}: {e}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut qmp = Qmp { reader: BufReader::new(stream) };
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn execute(&mut self, command: &str) -> Result<Value> {
        self.reader.get_mut().write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())?;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(format!("QMP closed before answering {command}").into());
            }
            if let Some(reply) = qmp_reply(&line) {
                return reply.map_err(|e| format!("QMP {command}: {e}").into());
            }
        }
    }

    /// Guest instructions executed so far (QEMU's raw icount; halted time not included).
    fn instructions(&mut self) -> Result<u64> {
        let reply = self.execute("query-replay")?;
        reply["icount"].as_u64().ok_or_else(|| format!("query-replay gave no icount: {reply}").into())
    }
}

/// One system under test: how to boot it and how to check how its run ended.
struct System {
    /// `libos` or `Linux`.
    name: &'static str,
    /// The boot (plain TCG, no trace; the icount boot adds to it).
    config: VmConfig,
    check: fn(&str, &Outcome) -> Result<()>,
}

fn check_libos(what: &str, outcome: &Outcome) -> Result<()> {
    if outcome.exit == Exit::Code(0) { Ok(()) } else { Err(failure(what, outcome)) }
}

/// libos on `arch`: the elf-runner image with redis and `servers/rootfs/`.
fn libos(arch: Arch, netns: &Netns) -> Result<System> {
    let image = REDIS.guest_image(arch)?;
    let mut config = VmConfig::new(arch, image);
    config.machine = machine(arch);
    config.memory = "256M".into();
    let args: Vec<String> = std::iter::once(format!("/bin/{}", REDIS.program)).chain(SERVER_ARGS.map(String::from)).collect();
    config.cmdline = qemu::kernel_cmdline(GUEST_IP_OPTION, &args);
    config.net = Some(NetConfig::tap(TAP));
    config.virtio_transport = Some(transport(arch));
    config.launcher = netns.launcher();
    config.timeout = Duration::from_secs(1800);
    Ok(System { name: "libos", config, check: check_libos })
}

/// The Linux guest on `arch`: the baseline's initramfs plus the same redis program and
/// `servers/rootfs/` (`/bin/redis-server`, `/srv/...`).
fn linux(arch: Arch, netns: &Netns) -> Result<(System, String)> {
    let base = LinuxGuest::build(arch)?;
    let mut extra = Cpio::new();
    extra.file(&format!("bin/{}", REDIS.program), 0o755, &std::fs::read(REDIS.build(arch)?)?);
    extra.tree(&crate::servers::rootfs(), "")?;
    let guest = base.with_files("redis", extra)?;
    let module = if transport(arch) == VirtioTransport::Pci { guest.virtio_transport() } else { "virtio_mmio" };
    let modules = guest.modules_for(&[module, "virtio_net"])?;
    let args = SERVER_ARGS.map(String::from);
    let mut config = guest.config(REDIS.program, &args, &modules, &format!("bench.net={GUEST_ADDRESS}"));
    config.net = Some(NetConfig::tap(TAP));
    config.virtio_transport = Some(transport(arch));
    config.launcher = netns.launcher();
    config.timeout = Duration::from_secs(1800);
    Ok((System { name: "Linux", config, check: check_run }, guest.kernel_package))
}

/// Boots `config` and waits for redis's ready line; then opens the control connection.
fn boot(config: &VmConfig, netns: &Netns, what: &str) -> Result<(Running, Control)> {
    let running = qemu::start(config, false, None)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let console = running.console();
        if console.contains(REDIS.ready) {
            break;
        }
        let ended = console.contains("libos: exit code") || console.contains("[bench] exit status:");
        if ended || Instant::now() > deadline {
            running.kill();
            return Err(failure(&format!("{what}: redis never said {:?}", REDIS.ready), &running.finish()?));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match Control::connect(netns) {
        Ok(control) => Ok((running, control)),
        Err(e) => {
            running.kill();
            Err(failure(&format!("{what}: {e}"), &running.finish()?))
        }
    }
}

/// Runs one redis-benchmark test inside `netns`; its CSV result.
fn benchmark(netns: &Netns, test: &str, requests: u64) -> Result<CsvResult> {
    let output = netns
        .command("timeout")
        .arg("900")
        .arg("redis-benchmark")
        .args(benchmark_args(test, requests))
        .output()
        .map_err(|e| format!("cannot run redis-benchmark: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("redis-benchmark -t {test} failed ({}): {stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)).into());
    }
    let mut results = parse_benchmark_csv(&stdout).map_err(|e| format!("redis-benchmark -t {test}: {e}:\n{stdout}"))?;
    match results.pop() {
        Some(result) if results.is_empty() && result.test.eq_ignore_ascii_case(test) => Ok(result),
        _ => Err(format!("redis-benchmark -t {test} printed other results than {test}:\n{stdout}").into()),
    }
}

/// Ends a boot: shuts redis down, waits for the guest and checks how it ended.
fn shut_down(system: &System, running: Running, control: Control, what: &str) -> Result<Outcome> {
    control.shut_down()?;
    let outcome = running.finish()?;
    (system.check)(what, &outcome)?;
    Ok(outcome)
}

/// The icount boot of `system`: per test, instructions and device traffic per request.
fn measure_icount(arch: Arch, netns: &Netns, system: &System, options: &Options) -> Result<(Vec<Value>, Value)> {
    let what = format!("{} redis ({arch}, icount)", system.name);
    eprintln!("==> {arch} {}: redis-benchmark -t {} -n {} -c 1 under icount + device trace", system.name, TESTS.join(","), options.requests);
    let dir = crate::linux::cache_dir().join("traces");
    let name = format!("{arch}-{}-redis", system.name.to_lowercase());
    let trace = DeviceTrace::new(&dir, &name)?;
    let socket = dir.join(format!("{name}.qmp"));
    let _ = std::fs::remove_file(&socket);
    let mut config = system.config.clone();
    config.icount = true;
    config.icount_sleep = true;
    config.extra_args.extend(trace.qemu_args());
    config.extra_args.extend(Qmp::qemu_args(&socket));
    let (running, mut control) = boot(&config, netns, &what)?;
    let mut measured = || -> Result<(Vec<TestRun>, f64)> {
        let mut qmp = Qmp::connect(&socket)?;
        std::thread::sleep(Duration::from_secs(1));
        let (before, started) = (qmp.instructions()?, Instant::now());
        std::thread::sleep(IDLE_STRETCH);
        let idle_rate = (qmp.instructions()? - before) as f64 / started.elapsed().as_secs_f64();
        let mut tests = Vec::new();
        for test in TESTS {
            control.mark("start")?;
            let (before, started) = (qmp.instructions()?, Instant::now());
            let result = benchmark(netns, test, options.requests)?;
            let (after, took) = (qmp.instructions()?, started.elapsed());
            control.mark("end")?;
            tests.push((result, after - before, took));
        }
        Ok((tests, idle_rate))
    };
    let (tests, idle_rate) = match measured() {
        Ok(done) => done,
        Err(e) => {
            running.kill();
            return Err(failure(&format!("{what}: {e}"), &running.finish()?));
        }
    };
    shut_down(system, running, control, &what)?;
    let windows = trace.windows()?;
    if windows.len() != TESTS.len() {
        return Err(format!("{what}: {} marked windows in the trace {}, expected {}", windows.len(), trace.log.display(), TESTS.len()).into());
    }
    let n = options.requests;
    let figures = tests
        .iter()
        .zip(&windows)
        .map(|((result, instructions, took), window)| {
            json!({
                "test": result.test,
                "requests": n,
                "instructions_per_request": round(*instructions as f64 / n as f64),
                "device_per_request": per_operation(&window.1, n),
                "window_wall_s": round(took.as_secs_f64()),
                "background_share_estimate": round(idle_rate * took.as_secs_f64() / (*instructions).max(1) as f64),
                "rps_under_icount": result.rps,
            })
        })
        .collect();
    let run = json!({ "idle_instructions_per_second": round(idle_rate), "qemu_command": command_line(&config) });
    Ok((figures, run))
}

/// The plain-TCG boot of `system`: requests/s of each test, `runs` times, interleaved.
fn measure_wall(arch: Arch, netns: &Netns, system: &System, options: &Options) -> Result<Vec<Value>> {
    let what = format!("{} redis ({arch}, TCG)", system.name);
    eprintln!("==> {arch} {}: redis-benchmark -t {} -n {} -c 1, {} runs each (TCG wall clock)", system.name, TESTS.join(","), options.requests, options.runs);
    let (running, control) = boot(&system.config, netns, &what)?;
    let mut samples: Vec<Vec<CsvResult>> = vec![Vec::new(); TESTS.len()];
    for _ in 0..options.runs {
        for (test, results) in TESTS.iter().zip(&mut samples) {
            match benchmark(netns, test, options.requests) {
                Ok(result) => results.push(result),
                Err(e) => {
                    running.kill();
                    return Err(failure(&format!("{what}: {e}"), &running.finish()?));
                }
            }
        }
    }
    shut_down(system, running, control, &what)?;
    Ok(samples
        .iter()
        .map(|results| {
            let (median, min, max) = measure::median_min_max(results.iter().map(|r| r.rps).collect());
            let (p50, _, _) = measure::median_min_max(results.iter().map(|r| r.p50_latency_ms).collect());
            let (avg, _, _) = measure::median_min_max(results.iter().map(|r| r.avg_latency_ms).collect());
            let (p99, _, _) = measure::median_min_max(results.iter().map(|r| r.p99_latency_ms).collect());
            json!({
                "rps": round(median), "rps_min": round(min), "rps_max": round(max),
                "runs": results.iter().map(|r| r.rps).collect::<Vec<_>>(),
                "median_avg_latency_ms": avg, "median_p50_latency_ms": p50, "median_p99_latency_ms": p99,
            })
        })
        .collect())
}

/// Both boots of `system`: one JSON object with a `tests` array (SET, GET).
fn measure_system(arch: Arch, netns: &Netns, system: &System, options: &Options) -> Result<Value> {
    let (mut tests, run) = measure_icount(arch, netns, system, options)?;
    let wall = measure_wall(arch, netns, system, options)?;
    for (test, wall) in tests.iter_mut().zip(wall) {
        test["tcg_wall"] = wall;
    }
    Ok(json!({ "tests": tests, "icount_run": run }))
}

/// The figures compared: label and path in a test's JSON.
const FIGURES: [(&str, &str); 4] = [
    ("guest instructions per request (icount, halted time excluded)", "instructions_per_request"),
    ("exits per request (MMIO/PIO + notifications)", "device_per_request.total exits"),
    ("interrupts injected per request", "device_per_request.total interrupts injected"),
    ("requests/s (TCG wall, median)", "tcg_wall.rps"),
];

fn figure(test: &Value, path: &str) -> Option<f64> {
    path.split('.').try_fold(test, |v, k| v.get(k)).and_then(Value::as_f64)
}

/// The tests of a system's JSON.
fn tests_of(system: Option<&Value>) -> Vec<Value> {
    system.and_then(|s| s["tests"].as_array().cloned()).unwrap_or_default()
}

/// libos / Linux per test and figure (null where Linux did not run or is 0).
fn ratios(ours: &Value, theirs: Option<&Value>) -> Value {
    let theirs = tests_of(theirs);
    let rows: Vec<Value> = tests_of(Some(ours))
        .iter()
        .map(|test| {
            let mut row = serde_json::Map::new();
            row.insert("test".into(), test["test"].clone());
            let them = theirs.iter().find(|t| t["test"] == test["test"]);
            for (_, path) in FIGURES {
                let ratio = match (figure(test, path), them.and_then(|t| figure(t, path))) {
                    (Some(a), Some(b)) if b > 0.0 => json!(round(a / b)),
                    _ => Value::Null,
                };
                row.insert(path.into(), ratio);
            }
            Value::Object(row)
        })
        .collect();
    json!(rows)
}

/// The Markdown rows of one arch: test, figure, libos, Linux, ratio.
fn markdown_rows(arch: Arch, ours: &Value, theirs: Option<&Value>) -> String {
    let theirs = tests_of(theirs);
    let mut md = String::new();
    for test in tests_of(Some(ours)) {
        let them = theirs.iter().find(|t| t["test"] == test["test"]);
        for (label, path) in FIGURES {
            let (us, them) = (figure(&test, path), them.and_then(|t| figure(t, path)));
            let cell = |v: Option<f64>| v.map_or("-".to_string(), measure::format_figure);
            let ratio = match (us, them) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            md += &format!("| {arch} | {} | {label} | {} | {} | {ratio} |\n", test["test"].as_str().unwrap_or("?"), cell(us), cell(them));
        }
    }
    md
}

fn markdown(options: &Options, rows: &str, notes: &str) -> String {
    format!(
        "# Real servers (`./x bench servers`)\n\n\
         ## redis with redis-benchmark, libos against the Linux guest\n\n\
         redis {version} from Debian's source package, the same static musl file on both systems (`./x build-server redis`): \
         on libos through posix-shim's ELF loader, in the Linux guest from its initramfs; `redis-server {args}` with \
         `servers/rootfs/srv/redis.conf`. Both guests on the same card over the same tap (x86_64: virtio-net-pci on q35; \
         aarch64: virtio-mmio on virt-gicv3). The tool is the host's redis-benchmark (Debian redis-tools, the same version) \
         inside the tap's namespace, one test per invocation: `redis-benchmark -h {GUEST_IP} -p {PORT} -t set|get -n {n} -c 1 \
         -P 1 --csv` (one connection, one request in flight).\n\n\
         Instructions: QEMU's own instruction counter (QMP `query-replay` under `-icount shift=0,sleep=on`), read by the \
         harness just before and after each redis-benchmark invocation: executed guest instructions only (the halted, idle \
         time is not counted, on both systems alike), / {n}. They include the tool's connection set-up (a connect, `CONFIG \
         GET`s on a second connection) and the timers that run meanwhile (redis's 10 Hz `serverCron`, the kernel's); the \
         instruction rate of a 2 s idle stretch is in the JSON (`idle_instructions_per_second`). Exits and interrupts: QEMU \
         device trace between `[bench] mark start` / `end` lines the harness has redis write to its log (`DEBUG LOG`), / {n}. \
         Requests/s: redis-benchmark's own figure under plain TCG, median of {runs} runs per test in one boot (min, max in \
         the JSON); wall-clock, TCG. Ratios below 1 favour libos.\n\n\
         | arch | request | figure | libos | Linux | libos / Linux |\n|---|---|---|---|---|---|\n{rows}{notes}",
        version = REDIS.version,
        args = SERVER_ARGS.join(" "),
        n = options.requests,
        runs = options.runs,
    )
}

pub(super) fn run(args: Vec<String>) -> Result<i32> {
    let options = Options::parse(args)?;
    crate::linux::ensure_net_tools()?;
    REDIS.ensure_clients()?;
    let netns = Netns::create("bench")?;
    let mut arches = Vec::new();
    let mut rows = String::new();
    let mut notes = String::new();
    for &arch in &options.arches {
        let ours_system = libos(arch, &netns)?;
        let ours = measure_system(arch, &netns, &ours_system, &options)?;
        let (theirs, kernel) = if options.linux {
            let (system, kernel) = linux(arch, &netns)?;
            (Some(measure_system(arch, &netns, &system, &options)?), Some(kernel))
        } else {
            (None, None)
        };
        rows += &markdown_rows(arch, &ours, theirs.as_ref());
        let idle = |s: Option<&Value>| s.and_then(|s| s["icount_run"]["idle_instructions_per_second"].as_f64()).map_or("-".into(), measure::format_figure);
        notes += &format!("\n{arch}: instructions per second while idle (2 s, between requests): libos {}, Linux {}.", idle(Some(&ours)), idle(theirs.as_ref()));
        arches.push(json!({
            "arch": arch.name(),
            "libos": ours,
            "linux": theirs,
            "linux_kernel_package": kernel,
            "libos_over_linux": ratios(&ours, theirs.as_ref()),
        }));
    }
    let json = json!({
        "suite": "servers",
        "host": host_facts(),
        "accelerator": Accel::Tcg.to_string(),
        "server": { "name": REDIS.name, "package": REDIS.package, "version": REDIS.version, "program": REDIS.program, "args": SERVER_ARGS },
        "tool": "redis-benchmark (Debian redis-tools, host)",
        "tool_args": benchmark_args("TEST", options.requests),
        "requests_per_test": options.requests,
        "wall_runs": options.runs,
        "method": "per test one redis-benchmark invocation from the tap's namespace; instructions per request = QEMU raw icount (QMP query-replay, -icount shift=0,sleep=on; halted time not counted) after - before the invocation / requests; device counts per request = trace events between the [bench] mark start/end lines redis logs on DEBUG LOG / requests; rps = redis-benchmark's figure under plain TCG, median of the runs",
        "arches": arches,
    });
    let md = markdown(&options, &rows, &if notes.is_empty() { notes } else { format!("{notes}\n") });
    measure::write_results("servers", &json, &md, &[])?;
    print!("{md}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_csv_parses_by_column_name() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"16666.67\",\"0.054\",\"0.016\",\"0.063\",\"0.087\",\"0.111\",\"0.183\"\n";
        let results = parse_benchmark_csv(csv).unwrap();
        assert_eq!(results, [CsvResult { test: "SET".into(), rps: 16666.67, avg_latency_ms: 0.054, p50_latency_ms: 0.063, p99_latency_ms: 0.111 }]);
        // Reordered columns, a comma inside a quoted name, CRLF endings.
        let csv = "\"rps\",\"test\",\"p99_latency_ms\",\"p50_latency_ms\",\"avg_latency_ms\"\r\n\"100\",\"LRANGE_100 (a, b)\",\"3\",\"2\",\"1\"\r\n";
        let results = parse_benchmark_csv(csv).unwrap();
        assert_eq!((results[0].test.as_str(), results[0].rps, results[0].p99_latency_ms), ("LRANGE_100 (a, b)", 100.0, 3.0));
        assert!(parse_benchmark_csv("").is_err());
        assert!(parse_benchmark_csv("\"test\",\"avg_latency_ms\"\n").unwrap_err().contains("rps"));
        let bad = "\"test\",\"rps\",\"avg_latency_ms\",\"p50_latency_ms\",\"p99_latency_ms\"\n\"GET\",\"fast\",\"1\",\"1\",\"1\"\n";
        assert!(parse_benchmark_csv(bad).unwrap_err().contains("rps"));
    }

    #[test]
    fn resp_commands_and_replies() {
        assert_eq!(resp_command(&["DEBUG", "LOG", "[bench] mark start"]), b"*3\r\n$5\r\nDEBUG\r\n$3\r\nLOG\r\n$18\r\n[bench] mark start\r\n");
        assert_eq!(parse_status_reply("+OK\r\n"), Ok("OK".into()));
        assert_eq!(parse_status_reply("-ERR DEBUG command not allowed\r\n"), Err("ERR DEBUG command not allowed".into()));
        assert_eq!(parse_status_reply(":1\r\n"), Ok(":1".into()));
        assert!(parse_status_reply("").is_err());
    }

    #[test]
    fn qmp_replies_skip_greeting_and_events() {
        assert_eq!(qmp_reply("{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}"), None);
        assert_eq!(qmp_reply("{\"event\": \"RESET\", \"timestamp\": {}}"), None);
        assert_eq!(qmp_reply("{\"return\": {\"icount\": 15744053, \"mode\": \"none\"}}"), Some(Ok(json!({ "icount": 15744053, "mode": "none" }))));
        assert_eq!(qmp_reply("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no icount\"}}"), Some(Err("no icount".into())));
        assert_eq!(qmp_reply("not json"), None);
    }

    #[test]
    fn options_and_benchmark_arguments() {
        let o = Options::parse(vec!["--arch".into(), "aarch64".into(), "--requests".into(), "500".into(), "--no-linux".into()]).unwrap();
        assert_eq!((o.arches, o.requests, o.runs, o.linux), (vec![Arch::Aarch64], 500, measure::MIN_WALL_RUNS, false));
        assert_eq!(Options::parse(vec!["--runs".into(), "2".into()]).unwrap().runs, measure::MIN_WALL_RUNS);
        assert!(Options::parse(vec!["--requests".into(), "0".into()]).is_err());
        assert!(Options::parse(vec!["--fast".into()]).is_err());
        assert_eq!(benchmark_args("get", 7).join(" "), "-h 10.0.2.15 -p 6379 -t get -n 7 -c 1 -P 1 --csv");
    }

    #[test]
    fn table_compares_libos_with_linux() {
        let system = |instructions: f64, exits: f64, rps: f64| {
            json!({ "tests": [{ "test": "SET", "instructions_per_request": instructions, "device_per_request": { "total exits": exits }, "tcg_wall": { "rps": rps } }] })
        };
        let (ours, theirs) = (system(30000.0, 2.0, 9000.0), system(60000.0, 4.0, 3000.0));
        let md = markdown_rows(Arch::X86_64, &ours, Some(&theirs));
        assert!(md.contains("| x86_64 | SET | guest instructions per request (icount, halted time excluded) | 30000 | 60000 | 0.50 |"), "{md}");
        assert!(md.contains("| x86_64 | SET | requests/s (TCG wall, median) | 9000 | 3000 | 3.00 |"), "{md}");
        assert!(md.contains("| x86_64 | SET | interrupts injected per request | - | - | - |"), "{md}");
        assert!(markdown_rows(Arch::Aarch64, &ours, None).contains("| 30000 | - | - |"));
        let r = ratios(&ours, Some(&theirs));
        assert_eq!(r[0]["device_per_request.total exits"], json!(0.5));
        assert_eq!(r[0]["device_per_request.total interrupts injected"], Value::Null);
    }
}
