//! # libos-tests: QEMU integration tests
//!
//! These tests boot real images (built by `./x build`) in QEMU, exactly as `./x run` does, and
//! check what the guest printed and the exit code it reported. Every test runs on every
//! architecture libos supports ([`arches`]).
//!
//! Run them with `./x test` (which builds the images first) or `./x test --qemu`.
//!
//! This file is the harness: [`Boot`] describes one boot and [`Booted`] its result with
//! assertion helpers that print the guest's console when they fail. [`expect`] holds the few
//! expected texts that differ between architectures (exception names, the exit-code fallback).
//!
//! Network: [`Boot::net_user`] gives the guest a NIC on QEMU's user network with loopback port
//! forwards ([`free_port`] picks a host port); [`Boot::net_tap`] puts it on a tap in a network
//! namespace made for the boot ([`Started::netns`]: run commands or Rust code there to reach the
//! guest at [`xtask::netns::GUEST_IP`]), deleted when the [`Started`] or [`Booted`] is dropped,
//! also when an assertion failed. A dropped [`Started`] kills its QEMU.

pub mod dtb;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use xtask::accel::{self, Accel};
use xtask::arch::Arch;
use xtask::build;
use xtask::disk::Disk;
use xtask::qemu::{self, Exit, Machine, Outcome, Running, VirtioTransport, VmConfig};
use xtask::net::{Forward, NetConfig};
use xtask::netns::Netns;
use xtask::virtiofs::{Cache, ROOT_TAG, Share};

/// The vCPUs of every boot that does not ask for a number: `LIBOS_TEST_CPUS` (1 to 64) when
/// set, else 1. Running the whole suite with `LIBOS_TEST_CPUS=4` checks that nothing in it
/// depends on one CPU.
fn default_cpus() -> u32 {
    std::env::var("LIBOS_TEST_CPUS").ok().and_then(|v| v.parse().ok()).filter(|n| (1..=64).contains(n)).unwrap_or(1)
}

/// The byte at `offset` of the test files `apps/vfs-share` writes and checks (it computes the
/// same): not periodic at powers of two, so a misplaced block shows.
pub fn share_pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (offset % 251) as u8
}

/// The architectures to test on: those with a platform crate.
pub fn arches() -> Vec<Arch> {
    Arch::ALL.into_iter().filter(|a| a.is_supported()).collect()
}

/// Set by `./x test`, which builds every app for every architecture just before it runs the
/// tests: the test binaries then build nothing (28 cargo invocations were about 4 s per
/// binary here, 22 binaries). A program packed for elf-runner travels in an initial RAM
/// archive beside a copy of it (`build::elf_runner_with`), so packing never rebuilds the
/// runner either.
pub const IMAGES_BUILT_ENV: &str = "LIBOS_TEST_IMAGES_BUILT";

/// The image of `app` for `arch`; the first call per architecture builds every app, unless
/// [`IMAGES_BUILT_ENV`] says they were just built.
pub fn image(app: &str, arch: Arch) -> PathBuf {
    static BUILT: Mutex<Vec<Arch>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&arch) {
        let just_built = std::env::var_os(IMAGES_BUILT_ENV).is_some_and(|v| v == "1");
        if !just_built {
            let apps = build::apps();
            let names: Vec<&str> = apps.iter().map(String::as_str).collect();
            build::build(&names, arch, true).unwrap_or_else(|e| panic!("building the apps for {arch}: {e}"));
        }
        built.push(arch);
    }
    let image = build::image_path(app, arch);
    assert!(image.is_file(), "{} is missing: `./x build --arch {arch}` builds it", image.display());
    image
}

fn accelerator(arch: Arch) -> Accel {
    static CHOSEN: OnceLock<Mutex<HashMap<Arch, Accel>>> = OnceLock::new();
    let mut chosen = CHOSEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    *chosen.entry(arch).or_insert_with(|| accel::choose(arch, None).expect("choosing an accelerator").accel)
}

/// One boot to perform.
#[derive(Clone, Debug)]
pub struct Boot {
    app: String,
    /// An image to boot instead of the app's ([`Boot::with_image`]).
    image: Option<PathBuf>,
    args: Vec<String>,
    options: String,
    memory: String,
    cpus: u32,
    machine: Option<Machine>,
    debug_exit: bool,
    timeout: Duration,
    qemu_args: Vec<String>,
    shares: Vec<Share>,
    transport: Option<VirtioTransport>,
    net: Option<Net>,
    disks: Vec<Disk>,
    rng: bool,
    processes: Option<usize>,
}

/// The network a boot asked for.
#[derive(Clone, Debug)]
enum Net {
    /// QEMU's user network with these forwards, restricted or not.
    User(Vec<Forward>, bool),
    /// A tap in a namespace: made at [`Boot::start`], or one the test made first.
    Tap(Option<Arc<Netns>>),
}

/// A fresh host directory for one test and arch, removed when dropped. Created by `mkdtemp`
/// (an unpredictable name, mode 0700), never at a fixed path another user could have put a
/// symlink at: the tests run as root.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// In the host's temporary directory.
    pub fn new(test: &str, arch: Arch) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), test, arch)
    }

    /// On the host's tmpfs (`/dev/shm`), like the benchmarks' shares.
    pub fn on_tmpfs(test: &str, arch: Arch) -> TempDir {
        TempDir::new_in(std::path::Path::new("/dev/shm"), test, arch)
    }

    fn new_in(base: &std::path::Path, test: &str, arch: Arch) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("libos-test-{test}-{arch}-"))
            .tempdir_in(base)
            .unwrap_or_else(|e| panic!("creating a directory in {}: {e}", base.display()));
        TempDir(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &std::path::Path {
        self.0.path()
    }

    /// The path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A host TCP port on 127.0.0.1 that was free a moment ago (for a `--forward`).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

/// A network namespace with a tap for a test (the boot then uses [`Boot::net_tap_in`]), e.g.
/// to listen on the host side before the guest starts. Deleted when the last `Arc` is dropped.
pub fn netns() -> Arc<Netns> {
    ensure_net_tools();
    Arc::new(Netns::create("test").unwrap_or_else(|e| panic!("creating a network namespace: {e}")))
}

/// `ping`, `ip`, `tc` and `curl` (installed once per test process when missing).
fn ensure_net_tools() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| xtask::linux::ensure_net_tools().unwrap_or_else(|e| panic!("installing the network tools: {e}")));
}

impl Boot {
    /// Boots `app` with no arguments, 64 MiB, the arch's default machine (microvm, virt with
    /// GICv3), the exit-code device (`isa-debug-exit`, semihosting), a 60 s timeout.
    pub fn app(app: &str) -> Boot {
        Boot {
            app: app.into(),
            image: None,
            args: Vec::new(),
            options: String::new(),
            memory: "64M".into(),
            cpus: default_cpus(),
            machine: None,
            transport: None,
            debug_exit: true,
            timeout: Duration::from_secs(60),
            qemu_args: Vec::new(),
            shares: Vec::new(),
            net: None,
            disks: Vec::new(),
            rng: true,
            processes: None,
        }
    }

    /// Runs the guest under the process host, at most `limit` processes at once (each a VM:
    /// `fork` copies it), like `./x run --processes N`.
    pub fn processes(mut self, limit: usize) -> Boot {
        self.processes = Some(limit);
        self
    }

    /// Gives the guest a NIC on QEMU's user network (slirp, restricted to itself; the guest gets
    /// 10.0.2.15 by DHCP, without a gateway) with `forwards` from loopback host ports, like
    /// `./x run --net user`.
    pub fn net_user(mut self, forwards: &[Forward]) -> Boot {
        self.net = Some(Net::User(forwards.to_vec(), true));
        self
    }

    /// [`Boot::net_user`] unrestricted, like `./x run --net user-open`: only then does slirp's
    /// DHCP offer name a gateway (10.0.2.2). Only for guests that talk to slirp alone.
    pub fn net_user_open(mut self, forwards: &[Forward]) -> Boot {
        self.net = Some(Net::User(forwards.to_vec(), false));
        self
    }

    /// Gives the guest a NIC on a tap in a network namespace made for this boot, like `./x run
    /// --net tap`: host end 10.0.2.1/24, guest 10.0.2.15 (the option `ip=10.0.2.15/24,gw=10.0.2.1`
    /// is added unless the options have `ip=`). [`Started::netns`] reaches it.
    pub fn net_tap(mut self) -> Boot {
        self.net = Some(Net::Tap(None));
        self
    }

    /// [`Boot::net_tap`] in the namespace `netns` the test made first ([`netns`]).
    pub fn net_tap_in(mut self, netns: &Arc<Netns>) -> Boot {
        self.net = Some(Net::Tap(Some(netns.clone())));
        self
    }

    /// Boots `image` (built for the architecture the boot runs on) instead of the app's
    /// image: an elf-runner image with a program packed in, such as a real server's
    /// (`xtask::servers::Server::guest_image`). The app name only labels the boot.
    pub fn with_image(mut self, image: PathBuf) -> Boot {
        self.image = Some(image);
        self
    }

    /// Adds app arguments.
    pub fn args(mut self, args: &[&str]) -> Boot {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets the kernel options.
    pub fn options(mut self, options: &str) -> Boot {
        self.options = options.into();
        self
    }

    /// Sets the guest RAM.
    pub fn memory(mut self, memory: &str) -> Boot {
        self.memory = memory.into();
        self
    }

    /// Sets the number of virtual CPUs (`-smp`, like `./x run --cpus N`).
    pub fn cpus(mut self, cpus: u32) -> Boot {
        self.cpus = cpus;
        self
    }

    /// Sets the machine type (it must belong to the arch the boot runs on).
    pub fn machine(mut self, machine: Machine) -> Boot {
        self.machine = Some(machine);
        self
    }

    /// Adds QEMU arguments.
    pub fn qemu_args(mut self, args: &[&str]) -> Boot {
        self.qemu_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Attaches the raw image `image` as the next virtio-blk disk (`/dev/vda`, then `vdb`, ...),
    /// read-only if asked.
    pub fn disk(mut self, image: impl Into<PathBuf>, read_only: bool) -> Boot {
        self.disks.push(Disk { image: image.into(), read_only, snapshot: false });
        self
    }

    /// Shares the host directory `dir` with the guest through virtio-fs under `tag` (one
    /// virtiofsd per share, started before QEMU and stopped after it; see `xtask::virtiofs`).
    /// The guest mounts it with the kernel option `mount=virtiofs:TAG:/PATH`.
    pub fn share(mut self, dir: impl Into<PathBuf>, tag: &str) -> Boot {
        self.shares.push(Share::new(dir, tag));
        self
    }

    /// Shares `dir` as the root file system (`root=virtiofs:root`), like `./x run --root DIR`.
    pub fn root_share(mut self, dir: impl Into<PathBuf>) -> Boot {
        self.shares.insert(0, Share::new(dir, ROOT_TAG));
        self.options = format!("root=virtiofs:{ROOT_TAG} {}", self.options);
        self
    }

    /// Attaches virtio devices through `transport` instead of the machine's default (PCI on
    /// q35, else MMIO), e.g. PCI on aarch64 `virt`.
    pub fn transport(mut self, transport: VirtioTransport) -> Boot {
        self.transport = Some(transport);
        self
    }

    /// Makes every share's virtiofsd log each FUSE request it receives (read the log with
    /// `running.daemons()...log(INDEX)`), to count what reached the host.
    pub fn log_fuse_requests(mut self) -> Boot {
        self.shares.iter_mut().for_each(|s| s.log_requests = true);
        self
    }

    /// Sets virtiofsd's cache policy for every share.
    pub fn cache(mut self, cache: Cache) -> Boot {
        self.shares.iter_mut().for_each(|s| s.cache = cache);
        self
    }

    /// Gives every share a DAX window of `bytes` (our daemon and the patched QEMU serve them,
    /// through PCI; see `xtask::qemu::with_dax_host`).
    pub fn dax(mut self, bytes: u64) -> Boot {
        self.shares.iter_mut().for_each(|s| s.dax = Some(bytes));
        self
    }

    /// Sets the timeout after which QEMU is killed.
    pub fn timeout(mut self, timeout: Duration) -> Boot {
        self.timeout = timeout;
        self
    }

    /// Boots without the default virtio-rng device (a guest with no entropy source unless its
    /// CPU model has a random instruction).
    pub fn without_rng(mut self) -> Boot {
        self.rng = false;
        self
    }

    /// Boots without the exit-code device: no `isa-debug-exit` on x86_64, no semihosting on
    /// aarch64 (as on Firecracker or cloud-hypervisor).
    pub fn without_debug_exit(mut self) -> Boot {
        self.debug_exit = false;
        self
    }

    /// Boots on `arch` and returns the result.
    pub fn on(&self, arch: Arch) -> Booted {
        self.start(arch).finish()
    }

    /// Starts the boot on `arch` without waiting for it: the test can act while the guest
    /// runs (wait for a line, kill QEMU or a virtiofsd) and then [`Started::finish`].
    pub fn start(&self, arch: Arch) -> Started {
        let image = self.image.clone().unwrap_or_else(|| image(&self.app, arch));
        let mut config = VmConfig::new(arch, image);
        config.accel = accelerator(arch);
        config.memory = self.memory.clone();
        config.cpus = self.cpus;
        let machine = self.machine.unwrap_or_else(|| Machine::default_for(arch));
        config.machine = machine;
        config.debug_exit = self.debug_exit;
        config.extra_args = self.qemu_args.clone();
        config.timeout = self.timeout;
        config.cmdline = qemu::kernel_cmdline(&self.options, &self.args);
        config.shares = self.shares.clone();
        config.disks = self.disks.clone();
        config.rng = self.rng;
        config.processes = self.processes;
        config.virtio_transport = self.transport;
        let mut netns = None;
        match &self.net {
            None => {}
            Some(Net::User(forwards, true)) => config.net = Some(NetConfig::user(forwards.clone())),
            Some(Net::User(forwards, false)) => config.net = Some(NetConfig::user_open(forwards.clone())),
            Some(Net::Tap(existing)) => {
                let ns = existing.clone().unwrap_or_else(crate::netns);
                config.launcher = ns.launcher();
                config.net = Some(NetConfig::tap(xtask::netns::TAP));
                config.cmdline = qemu::kernel_cmdline(&xtask::net::with_tap_address(&self.options), &self.args);
                netns = Some(ns);
            }
        }
        let running = qemu::start(&config, false, None).unwrap_or_else(|e| panic!("starting QEMU: {e}"));
        Started { what: format!("{} {:?} on {arch} ({})", self.app, self.args, machine.name()), running, netns }
    }
}

/// A boot in progress ([`Boot::start`]). Dropping it kills QEMU, then deletes the boot's
/// network namespace (fields drop in declaration order).
pub struct Started {
    what: String,
    /// The QEMU process and its virtiofsd daemons.
    pub running: Running,
    /// The namespace of a [`Boot::net_tap`] boot.
    netns: Option<Arc<Netns>>,
}

impl Started {
    /// Waits until the console contains `text`; fails the test (with the console so far)
    /// after `timeout`.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> &Started {
        if !self.running.wait_for_console(text, timeout) {
            panic!("{}: no {text:?} on the console within {timeout:?}\n--- console:\n{}", self.what, self.running.console());
        }
        self
    }

    /// The network namespace of a [`Boot::net_tap`] boot (panics for other boots).
    pub fn netns(&self) -> &Arc<Netns> {
        self.netns.as_ref().unwrap_or_else(|| panic!("{}: not booted with net_tap()", self.what))
    }

    /// The console so far.
    pub fn console(&self) -> String {
        self.running.console()
    }

    /// Fails the test with `why` and the console so far.
    pub fn fail(&self, why: &str) -> ! {
        panic!("{}: {why}\n--- console:\n{}", self.what, self.running.console())
    }

    /// Waits for a whole console line starting with `prefix` and returns the rest of it; fails
    /// the test (with the console so far) after `timeout`.
    pub fn line_after(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let console = self.running.console();
            // Only lines that ended: the last one may still be arriving.
            let complete = &console[..console.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(rest) = complete.lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.to_string();
            }
            if std::time::Instant::now() > deadline {
                self.fail(&format!("no line starting with {prefix:?} within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the guest to end and returns the result.
    pub fn finish(self) -> Booted {
        let outcome = self.running.finish().unwrap_or_else(|e| panic!("running QEMU: {e}"));
        Booted { what: self.what, outcome, _netns: self.netns }
    }

    /// Kills QEMU (a server guest that never exits by itself) and returns the result.
    pub fn stop(self) -> Booted {
        self.running.kill();
        self.finish()
    }
}

/// A finished boot.
#[derive(Debug)]
pub struct Booted {
    what: String,
    /// What happened.
    pub outcome: Outcome,
    /// Kept until the test is done with the result (then deleted).
    _netns: Option<Arc<Netns>>,
}

impl Booted {
    fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n--- exit: {:?}\n--- console:\n{}\n--- QEMU stderr:\n{}",
            self.what, self.outcome.exit, self.outcome.console, self.outcome.stderr
        )
    }

    /// Asserts the guest exited with `code`.
    pub fn exits_with(&self, code: i32) -> &Booted {
        if self.outcome.exit != Exit::Code(code) {
            self.fail(&format!("expected exit code {code}"));
        }
        self
    }

    /// Asserts QEMU itself refused to run the guest, saying `text` on its error output.
    pub fn qemu_refuses(&self, text: &str) -> &Booted {
        if !matches!(self.outcome.exit, Exit::QemuFailed(..)) || !self.outcome.stderr.contains(text) {
            self.fail(&format!("expected QEMU to fail with {text:?}"));
        }
        self
    }

    /// Asserts the console contains `text`.
    pub fn prints(&self, text: &str) -> &Booted {
        if !self.outcome.console.contains(text) {
            self.fail(&format!("expected the console to contain {text:?}"));
        }
        self
    }

    /// Asserts the console does not contain `text`.
    pub fn does_not_print(&self, text: &str) -> &Booted {
        if self.outcome.console.contains(text) {
            self.fail(&format!("expected the console not to contain {text:?}"));
        }
        self
    }

    /// The console line starting with `prefix`, without the prefix.
    pub fn line_after(&self, prefix: &str) -> String {
        match self.outcome.console.lines().find_map(|l| l.strip_prefix(prefix)) {
            Some(rest) => rest.to_string(),
            None => self.fail(&format!("expected a line starting with {prefix:?}")),
        }
    }
}

/// Expected texts that differ between architectures. Each is as specific as the other arch's:
/// the tests compare whole phrases, never just "something crashed".
pub mod expect {
    use xtask::arch::Arch;

    /// The first line of the report of a data access to an unmapped or protected page.
    pub fn data_fault_header(arch: Arch) -> &'static str {
        match arch {
            Arch::X86_64 => "libos: fatal exception #PF (page fault, vector 14)",
            Arch::Aarch64 => "libos: fatal exception: data abort, same EL (EC 0x25)",
        }
    }

    /// The first line of the report of an instruction fetch from a non-executable page.
    pub fn fetch_fault_header(arch: Arch) -> &'static str {
        match arch {
            Arch::X86_64 => "libos: fatal exception #PF (page fault, vector 14)",
            Arch::Aarch64 => "libos: fatal exception: instruction abort, same EL (EC 0x21)",
        }
    }

    /// The line libos prints before powering off when it has no way to hand `code` to QEMU.
    pub fn exit_code_fallback(arch: Arch, code: i32) -> String {
        match arch {
            Arch::X86_64 => format!("libos: exit code {code}; no isa-debug-exit device, powering off"),
            Arch::Aarch64 => format!("libos: exit code {code}; no semihosting, powering off"),
        }
    }
}

/// The QEMU trace events [`blk_requests_between`] reads: console writes (to find the guest's
/// marker lines) and virtio-blk's request handling. Pass them with [`blk_trace_args`].
pub const BLK_TRACE_EVENTS: &[&str] = &["memory_region_ops_write", "virtio_blk_handle_read", "virtio_blk_handle_write", "virtio_blk_req_complete"];

/// QEMU arguments that write the [`BLK_TRACE_EVENTS`] to `log` (the `log` trace backend; the
/// event list is written next to it).
pub fn blk_trace_args(log: &std::path::Path) -> Vec<String> {
    let events = log.with_extension("events");
    std::fs::write(&events, BLK_TRACE_EVENTS.join("\n") + "\n").unwrap();
    vec!["-trace".into(), format!("events={}", events.display()), "-D".into(), log.display().to_string()]
}

/// virtio-blk requests QEMU completed while the guest was between the console line containing
/// `start` and the one containing `end`: `(reads and writes, others)`. QEMU traces reads and
/// writes when it takes them (`virtio_blk_handle_read/write`) but not flushes (nor `GET_ID`
/// or discards, which the file systems do not send), so a completion of a request that was
/// not a read or a write is a flush that reached the host's block layer. `None` when the
/// trace does not show both lines (the guest's console bytes are read back from its UART
/// writes: x86 COM1, aarch64 PL011).
pub fn blk_requests_between(trace: &str, start: &str, end: &str) -> Option<(usize, usize)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let value = line.split_once(&format!(" {name} 0x"))?.1.split_whitespace().next()?;
        u64::from_str_radix(value.trim_end_matches(','), 16).ok()
    };
    let mut read_or_write = std::collections::HashSet::new();
    let mut console = String::new();
    let mut inside = false;
    let (mut rw, mut other) = (0, 0);
    for line in trace.lines() {
        // The `log` backend may prefix `PID@SECONDS:`.
        let line = match line.split_once(':') {
            Some((prefix, rest)) if prefix.contains('@') && !prefix.contains(' ') => rest,
            _ => line,
        };
        let Some(event) = line.split_whitespace().next() else { continue };
        match event {
            "memory_region_ops_write" => {
                let device = line.split_once(" name '").and_then(|(_, rest)| rest.split('\'').next()).unwrap_or("");
                let Some(address) = field(line, "addr") else { continue };
                let is_data = match device {
                    "serial" => address == 0x3f8,
                    "pl011" => address & 0xfff == 0,
                    _ => false,
                };
                let Some(byte) = field(line, "value").filter(|_| is_data) else { continue };
                if byte as u8 != b'\n' {
                    console.push(char::from(byte as u8));
                    continue;
                }
                if !inside && console.contains(start) {
                    inside = true;
                } else if inside && console.contains(end) {
                    return Some((rw, other));
                }
                console.clear();
            }
            "virtio_blk_handle_read" | "virtio_blk_handle_write" => {
                read_or_write.insert(field(line, "req")?);
            }
            "virtio_blk_req_complete" => {
                let was_rw = read_or_write.remove(&field(line, "req")?);
                if inside {
                    if was_rw { rw += 1 } else { other += 1 }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::blk_requests_between;

    fn console(text: &str) -> String {
        text.bytes().map(|b| format!("memory_region_ops_write cpu 0 mr 0x1 addr 0x3f8 value 0x{b:x} size 1 name 'serial'\n")).collect()
    }

    #[test]
    fn flushes_are_the_completions_that_were_not_reads_or_writes_between_the_markers() {
        let mut trace = String::new();
        trace += "virtio_blk_req_complete vdev 0x1 req 0x50 status 0\n"; // before the window
        trace += &console("start\n");
        trace += "12@1.5:virtio_blk_handle_write vdev 0x1 req 0x10 sector 0x8 nsectors 2\n";
        trace += "virtio_blk_req_complete vdev 0x1 req 0x10 status 0\n";
        trace += "virtio_blk_req_complete vdev 0x1 req 0x10 status 0\n"; // reused: a flush
        trace += &console("end\n");
        trace += "virtio_blk_req_complete vdev 0x1 req 0x20 status 0\n";
        assert_eq!(blk_requests_between(&trace, "start", "end"), Some((1, 1)));
        assert_eq!(blk_requests_between(&trace, "start", "never"), None);
    }
}
