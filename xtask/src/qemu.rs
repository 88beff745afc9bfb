//! Booting an image in QEMU: the command line, the console capture, the timeout, and (in
//! [`exit`]) the decoding of the guest's exit code.

mod exit;

pub use exit::{Exit, Outcome, decode_boot_exit, decode_exit};

use crate::arch::Arch;
use crate::{Result, accel::Accel};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The x86 firmware for PVH `-kernel` boots: qboot starts in a fraction of SeaBIOS's time.
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// A QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    /// x86 `microvm`: no PCI, minimal devices (the default on x86_64); with its PIT (clock
    /// calibration) and CMOS real-time clock (the wall clock).
    Microvm,
    /// x86 `microvm,pcie=on`: microvm with a PCIe host (described in the DSDT only).
    MicrovmPcie,
    /// x86 `q35`: PCIe, ACPI, legacy devices.
    Q35,
    /// aarch64 `virt` with a GICv2.
    VirtGicv2,
    /// aarch64 `virt` with a GICv3 (the default on aarch64).
    VirtGicv3,
}

impl Machine {
    /// Every machine type.
    pub const ALL: [Machine; 5] = [Machine::Microvm, Machine::MicrovmPcie, Machine::Q35, Machine::VirtGicv2, Machine::VirtGicv3];

    /// The default machine of `arch`.
    pub fn default_for(arch: Arch) -> Machine {
        match arch {
            Arch::X86_64 => Machine::Microvm,
            Arch::Aarch64 => Machine::VirtGicv3,
        }
    }

    /// The architecture this machine emulates.
    pub fn arch(self) -> Arch {
        match self {
            Machine::Microvm | Machine::MicrovmPcie | Machine::Q35 => Arch::X86_64,
            Machine::VirtGicv2 | Machine::VirtGicv3 => Arch::Aarch64,
        }
    }

    /// The machines of `arch`.
    pub fn of(arch: Arch) -> Vec<Machine> {
        Machine::ALL.into_iter().filter(|m| m.arch() == arch).collect()
    }

    /// The name `--machine` takes.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::MicrovmPcie => "microvm-pcie",
            Machine::Q35 => "q35",
            Machine::VirtGicv2 => "virt-gicv2",
            Machine::VirtGicv3 => "virt-gicv3",
        }
    }
}

impl std::str::FromStr for Machine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Machine, String> {
        match s {
            "microvm" => Ok(Machine::Microvm),
            "microvm-pcie" => Ok(Machine::MicrovmPcie),
            "q35" => Ok(Machine::Q35),
            "virt" | "virt-gicv3" => Ok(Machine::VirtGicv3),
            "virt-gicv2" => Ok(Machine::VirtGicv2),
            other => Err(format!("unknown machine `{other}` (expected microvm, microvm-pcie or q35 for x86_64, virt-gicv3 or virt-gicv2 for aarch64)")),
        }
    }
}

/// How virtio devices attach to the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioTransport {
    /// virtio-mmio (version 2, modern): microvm, aarch64 `virt`.
    Mmio,
    /// virtio-mmio version 1 (legacy), QEMU's own default for virtio-mmio devices.
    MmioLegacy,
    /// virtio-pci (modern): q35; aarch64 `virt` has PCIe too.
    Pci,
}

impl VirtioTransport {
    /// The transport a machine's virtio devices use unless a boot asks otherwise: PCI where
    /// the machine is a PCI machine (q35), else MMIO.
    pub fn default_for(machine: Machine) -> VirtioTransport {
        match machine {
            Machine::Q35 | Machine::MicrovmPcie => VirtioTransport::Pci,
            Machine::Microvm | Machine::VirtGicv2 | Machine::VirtGicv3 => VirtioTransport::Mmio,
        }
    }
}

/// The CPU model of aarch64 boots (`max` and `host` do not work under TCG on every host).
pub const AARCH64_CPU: &str = "cortex-a72";

/// Everything that describes one boot.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// Guest architecture.
    pub arch: Arch,
    /// The image to boot.
    pub image: PathBuf,
    /// Machine type.
    pub machine: Machine,
    /// Accelerator.
    pub accel: Accel,
    /// Guest RAM, in QEMU's syntax (`64M`, `1G`).
    pub memory: String,
    /// Virtual CPUs (`-smp`); 1 keeps QEMU's default. Under TCG without icount, QEMU runs
    /// several vCPUs on host threads of their own (multi-threaded TCG).
    pub cpus: u32,
    /// The kernel command line.
    pub cmdline: String,
    /// Give the guest a way to report its exit code: `isa-debug-exit` (x86), semihosting
    /// (aarch64).
    pub debug_exit: bool,
    /// Run with `-icount shift=0,sleep=off` (deterministic: one virtual ns per instruction).
    pub icount: bool,
    /// With `icount`: `sleep=on`, so an idle guest's clock follows real time instead of
    /// jumping to its next timer. For workloads paced by the host (TCP round trips), where
    /// jumping would fire the guest's retransmission timers while the host is still answering;
    /// the guest's idle ticks (`libos::idle`) are then subtracted to get its instructions.
    pub icount_sleep: bool,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// More QEMU arguments.
    pub extra_args: Vec<String>,
    /// Host directories shared through virtio-fs, one virtiofsd each (see [`crate::virtiofs`]).
    pub shares: Vec<crate::virtiofs::Share>,
    /// How virtio devices attach (default: [`VirtioTransport::default_for`] the machine).
    pub virtio_transport: Option<VirtioTransport>,
    /// A command QEMU runs under, e.g. `ip netns exec NS` (it must `exec` QEMU, so that the
    /// timeout's kill reaches QEMU itself). Empty: QEMU runs directly.
    pub launcher: Vec<String>,
    /// The guest's network card, on the same transport as the other virtio devices (see
    /// [`crate::net`]). A tap back end also needs [`VmConfig::launcher`] to enter the
    /// namespace holding the tap.
    pub net: Option<crate::net::NetConfig>,
    /// Disks, attached as virtio-blk devices in this order (`/dev/vda`, `/dev/vdb`, ...) on
    /// the boot's transport.
    pub disks: Vec<crate::disk::Disk>,
    /// Give the guest a virtio-rng device (on the boot's transport) that feeds it the host's
    /// entropy: on by default, so guests' `getrandom` is seeded; off to test a guest without
    /// any entropy source. Never under icount with `sleep=off` (see [`VmConfig::clock_jumps`]).
    pub rng: bool,
    /// Run the guest under a process host ([`crate::process`]) allowing this many processes
    /// at once: the guest gets a control channel, and `fork` makes new VMs. `None`: one VM.
    pub processes: Option<usize>,
    /// The QEMU binary; `None`: the system's `qemu-system-ARCH` (a boot with a DAX share gets
    /// the patched one, see [`with_dax_host`]).
    pub qemu: Option<PathBuf>,
    /// An initial RAM archive (`-initrd`, a `newc` cpio archive) whose files boot unpacks into
    /// `/` after the image's own: how elf-runner gets a program without a rebuild. [`VmConfig::new`]
    /// takes the archive beside the image, if it has one ([`crate::build::initrd_of`]).
    pub initrd: Option<PathBuf>,
}

impl VmConfig {
    /// Whether the guest's virtual clock jumps to its next timer whenever it halts (icount
    /// with `sleep=off`). Then no virtio-rng: QEMU arms the device's rate-limit timer on the
    /// virtual clock once the guest has used it, and every halted wait for another device
    /// jumps ahead to that deadline, which the guest counts as instructions (measured: ext2
    /// creates at 6.5 M ticks instead of 11 k, virtio-fs creates at 131 M instead of 11 k).
    /// Seeding is not what such boots measure; a program that needs entropy there gets it from
    /// the CPU's random instruction, or waits.
    pub fn clock_jumps(&self) -> bool {
        self.icount && !self.icount_sleep
    }

    /// A config with the defaults of `./x run`: the arch's default machine (microvm, virt with
    /// GICv3), 64 MiB, TCG, 60 s timeout.
    pub fn new(arch: Arch, image: PathBuf) -> VmConfig {
        // An image with programs packed for it boots with their archive.
        let initrd = Some(crate::build::initrd_of(&image)).filter(|archive| archive.is_file());
        VmConfig {
            arch,
            image,
            machine: Machine::default_for(arch),
            accel: Accel::Tcg,
            memory: "64M".into(),
            cpus: 1,
            cmdline: String::new(),
            debug_exit: true,
            icount: false,
            icount_sleep: false,
            timeout: Duration::from_secs(60),
            extra_args: Vec::new(),
            shares: Vec::new(),
            virtio_transport: None,
            launcher: Vec::new(),
            net: None,
            disks: Vec::new(),
            rng: true,
            processes: None,
            qemu: None,
            initrd,
        }
    }

    /// How this boot's virtio devices attach: [`VmConfig::virtio_transport`], else the
    /// machine's default.
    pub fn transport(&self) -> VirtioTransport {
        self.virtio_transport.unwrap_or_else(|| VirtioTransport::default_for(self.machine))
    }

    /// The QEMU command.
    pub fn command(&self) -> Command {
        let qemu = self.qemu.clone().unwrap_or_else(|| PathBuf::from(self.arch.qemu()));
        let mut command = match self.launcher.split_first() {
            None => Command::new(&qemu),
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&qemu);
                command
            }
        };
        match self.machine {
            Machine::Microvm => command.args(["-M", "microvm,rtc=on,pit=on", "-bios", QBOOT]),
            Machine::MicrovmPcie => command.args(["-M", "microvm,rtc=on,pit=on,pcie=on", "-bios", QBOOT]),
            Machine::Q35 => command.args(["-M", "q35", "-bios", QBOOT]),
            Machine::VirtGicv2 => command.args(["-M", "virt,gic-version=2", "-cpu", AARCH64_CPU]),
            Machine::VirtGicv3 => command.args(["-M", "virt,gic-version=3", "-cpu", AARCH64_CPU]),
        };
        if self.accel == Accel::Tcg && self.cpus > 1 && !self.icount {
            // One host thread per vCPU (QEMU's default for these targets, said explicitly).
            command.args(["-accel", "tcg,thread=multi"]);
        } else {
            command.args(["-accel", self.accel.qemu_name()]);
        }
        if self.icount {
            command.args(["-icount", if self.icount_sleep { "shift=0,sleep=on" } else { "shift=0,sleep=off" }]);
        }
        command.args(["-m", &self.memory, "-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"]);
        if self.cpus > 1 {
            command.args(["-smp", &self.cpus.to_string()]);
        }
        if self.debug_exit {
            match self.arch {
                Arch::X86_64 => command.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]),
                Arch::Aarch64 => command.args(["-semihosting-config", "enable=on,target=native"]),
            };
        }
        command.arg("-kernel").arg(&self.image);
        if let Some(initrd) = &self.initrd {
            command.arg("-initrd").arg(initrd);
        }
        if !self.cmdline.is_empty() {
            command.args(["-append", &self.cmdline]);
        }
        if let Some(net) = &self.net {
            command.args(net.qemu_args(self.transport()));
        }
        let mut disks: Vec<(usize, &crate::disk::Disk)> = self.disks.iter().enumerate().collect();
        if matches!(self.machine, Machine::VirtGicv2 | Machine::VirtGicv3) && self.transport() != VirtioTransport::Pci {
            // On `virt`, each `-device` takes the next virtio-mmio slot from the top address
            // down, while the device tree (which the guest enumerates) lists the slots lowest
            // address first (QEMU hw/arm/virt.c, create_virtio_devices). Giving the disks in
            // reverse makes the first `--disk` the guest's first disk, `vda`, as on x86_64.
            disks.reverse();
        }
        for (index, disk) in disks {
            command.args(disk.qemu_args(index, self.transport()));
        }
        if self.rng && !self.clock_jumps() {
            command.args(rng_args(self.transport()));
        }
        command.args(&self.extra_args);
        command
    }
}

/// The QEMU arguments of a virtio-rng device on `transport`, fed from the host's `getrandom`
/// (QEMU's default backend). Given after the disks: on aarch64 `virt` it then takes a lower
/// virtio-mmio slot than they do, so the disks keep their slots (and names) with or without it.
pub fn rng_args(transport: VirtioTransport) -> Vec<String> {
    let device = match transport {
        VirtioTransport::Pci => "virtio-rng-pci,disable-legacy=on",
        VirtioTransport::Mmio => return ["-global", "virtio-mmio.force-legacy=false", "-device", "virtio-rng-device"].map(String::from).to_vec(),
        VirtioTransport::MmioLegacy => "virtio-rng-device",
    };
    vec!["-device".into(), device.into()]
}

/// Parses QEMU's `-m` syntax: a number with an optional `K`/`M`/`G`/`T` suffix (default `M`).
pub fn parse_memory(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "M"),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then(|| (value * (1u64 << shift) as f64) as u64)
}

/// Where QEMU `virt` loads an arm64 `Image` with text_offset 0: 2 MiB into RAM (its boot stub
/// lives at the start of RAM).
pub const AARCH64_LOAD_OFFSET: u64 = 2 << 20;

/// Refuses RAM sizes the image cannot load into: QEMU and qboot hang silently there, before
/// the kernel could say anything. On aarch64 RAM starts wherever the machine puts it (the
/// DTB's memory node) and the image is loaded [`AARCH64_LOAD_OFFSET`] into it; its header's
/// `image_size` (file, .bss and stacks) must fit, since the entry code zeroes .bss before it
/// can print anything.
fn check_memory(config: &VmConfig) -> Result<()> {
    let Some(bytes) = parse_memory(&config.memory) else {
        return Err(format!("cannot read the memory size `{}` (examples: 64M, 1G)", config.memory).into());
    };
    let image = std::fs::read(&config.image).map_err(|e| format!("cannot read {}: {e}", config.image.display()))?;
    if config.arch == Arch::Aarch64 {
        let size = crate::build::arm64_image_size(&image)
            .ok_or_else(|| format!("{} is not a Linux arm64 Image", config.image.display()))?;
        let end = AARCH64_LOAD_OFFSET + size;
        if end > bytes {
            return Err(format!(
                "guest RAM {} is smaller than the image, which loads 2 MiB into RAM and occupies up to {} KiB; give it at least {}M",
                config.memory,
                end.div_ceil(1024),
                end.div_ceil(1 << 20)
            )
            .into());
        }
        return Ok(());
    }
    match crate::elf::load_end(&image) {
        Some(end) if end > bytes => Err(format!(
            "guest RAM {} is smaller than the image, which loads up to {} KiB; give it at least 2M",
            config.memory,
            end.div_ceil(1024)
        )
        .into()),
        _ => Ok(()),
    }
}

/// The QEMU processes this program is running now (for [`kill_running`]).
static RUNNING: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

/// Adds QEMU `pid` (a process host's child VM) to the ones [`kill_running`] kills.
pub(crate) fn track(pid: u32) {
    if let Ok(mut running) = RUNNING.lock() {
        running.push(pid);
    }
}

/// Removes QEMU `pid` from [`kill_running`]'s list (it ended).
pub(crate) fn untrack(pid: u32) {
    if let Ok(mut running) = RUNNING.lock() {
        running.retain(|&p| p != pid);
    }
}

/// Kills every QEMU this program started and is still waiting for: an interrupted benchmark
/// must not leave guests behind (Ctrl-C in a terminal reaches them too, a `kill` does not).
pub fn kill_running() {
    let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Boots `config`, echoing the console to our stdout when `echo` is set.
pub fn run(config: &VmConfig, echo: bool) -> Result<Outcome> {
    run_observed(config, echo, None)
}

/// [`run`], also sending the console to `observer` as it arrives (in chunks, not lines), so a
/// caller can act while the guest runs (a benchmark waits for the guest's ready line).
pub fn run_observed(config: &VmConfig, echo: bool, observer: Option<mpsc::Sender<String>>) -> Result<Outcome> {
    start(config, echo, observer)?.finish()
}

/// A guest that is running: what [`start`] returns. Tests use it to act while the guest runs
/// (wait for a line, kill QEMU, look at a virtiofsd); [`Running::finish`] waits for the end.
pub struct Running {
    config: VmConfig,
    echo: bool,
    pid: u32,
    started: Instant,
    /// The console so far (the reader thread appends).
    console: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    console_reader: Option<std::thread::JoinHandle<()>>,
    stderr_reader: Option<std::thread::JoinHandle<String>>,
    finished: mpsc::Receiver<std::io::Result<std::process::ExitStatus>>,
    /// The virtiofsd processes of the boot's shares, stopped after QEMU.
    daemons: Option<crate::virtiofs::Daemons>,
    /// The process host, when the boot runs several processes (stopped after the first VM).
    processes: Option<crate::process::ProcessHost>,
    /// QEMU has ended and was waited for (else dropping this kills it).
    ended: bool,
}

/// Copies a QEMU's serial output (`stdout`) into `console` as it comes, echoing it to this
/// process's stdout when `echo` and handing each piece to `observer`; ends with the output.
pub(crate) fn copy_console(
    mut stdout: impl Read + Send + 'static,
    console: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    echo: bool,
    observer: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if echo {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buffer[..n]);
                let _ = out.flush();
            }
            if let Some(observer) = &observer {
                // The observer may have stopped listening; the capture goes on regardless.
                let _ = observer.send(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
            if let Ok(mut collected) = console.lock() {
                collected.extend_from_slice(&buffer[..n]);
            }
        }
    })
}

/// Starts QEMU for `config` (and a virtiofsd per share first) without waiting for it.
/// `config` ready for its DAX shares, if it has any: the patched QEMU ([`crate::dax_qemu`],
/// built on first use), and PCI (the window is a PCI BAR): microvm becomes microvm with PCIe,
/// aarch64 `virt` attaches its devices through PCI. Refused: a transport asked for that is
/// not PCI, and a process host (a fork copies the VM, but not the daemon's mappings).
pub fn with_dax_host(config: &VmConfig) -> Result<std::borrow::Cow<'_, VmConfig>> {
    if !crate::virtiofs::any_dax(&config.shares) {
        return Ok(std::borrow::Cow::Borrowed(config));
    }
    if config.processes.is_some() {
        return Err("a DAX window (--dax) does not work with processes (--processes): a fork copies the VM but not the host's mappings into its window".into());
    }
    if let Some(other) = config.virtio_transport.filter(|&t| t != VirtioTransport::Pci) {
        return Err(format!("a DAX window (--dax) is a PCI BAR: it needs the PCI transport, not {other:?}").into());
    }
    let mut ready = config.clone();
    if config.machine == Machine::Microvm {
        ready.machine = Machine::MicrovmPcie;
    }
    // On x86_64 the kernel places the window in the machine's 32-bit PCI window (it does not
    // read the 64-bit one from the ACPI tables yet), after the devices' register BARs and
    // naturally aligned: microvm's is 512 MiB, q35's about 1 GiB. A window that does not fit
    // would leave the share without DAX, so it is refused here with the limit.
    let largest = match ready.machine {
        Machine::MicrovmPcie => Some(256u64 << 20),
        Machine::Q35 => Some(512 << 20),
        _ => None,
    };
    if let Some(largest) = largest {
        if let Some(too_big) = config.shares.iter().filter_map(|s| s.dax).find(|&w| w > largest) {
            return Err(format!(
                "a {} MiB DAX window does not fit in {}'s 32-bit PCI window: at most {} MiB on x86_64 here",
                too_big >> 20,
                ready.machine.name(),
                largest >> 20
            )
            .into());
        }
    }
    ready.virtio_transport = Some(VirtioTransport::Pci);
    if ready.qemu.is_none() {
        ready.qemu = Some(crate::dax_qemu::ensure(config.arch)?);
    }
    Ok(std::borrow::Cow::Owned(ready))
}

/// Starts QEMU for `config` (and the daemons of its shares, and its process host), copying its
/// console as it comes; [`Running::finish`] waits for the end.
pub fn start(config: &VmConfig, echo: bool, observer: Option<mpsc::Sender<String>>) -> Result<Running> {
    let config = &*with_dax_host(config)?;
    if config.machine.arch() != config.arch {
        return Err(format!("machine {} is not an {} machine (expected one of: {})", config.machine.name(), config.arch,
            Machine::of(config.arch).iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")).into());
    }
    check_memory(config)?;
    let daemons = if config.shares.is_empty() { None } else { Some(crate::virtiofs::Daemons::start(&config.shares)?) };
    let mut command = config.command();
    if let Some(daemons) = &daemons {
        command.args(daemons.qemu_args(config.transport(), &config.memory));
    }
    let console = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut processes = match config.processes {
        Some(limit) => Some(crate::process::ProcessHost::new(config, limit, console.clone(), echo)?),
        None => None,
    };
    if let Some(host) = &processes {
        command.args(host.first_vm_args());
    }
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.get_program().to_string_lossy()))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let collected = console.clone();
    let console_reader = copy_console(stdout, collected, echo, observer);
    let stderr_reader = std::thread::spawn(move || {
        let mut collected = String::new();
        let _ = stderr.read_to_string(&mut collected);
        collected
    });

    // Wait for QEMU in a thread so the timeout can be a channel timeout.
    let pid = child.id();
    track(pid);
    if let Some(host) = &mut processes {
        if let Err(e) = host.attach_first(pid) {
            let _ = child.kill();
            let _ = child.wait();
            untrack(pid);
            return Err(e);
        }
    }
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    Ok(Running {
        config: config.clone(),
        echo,
        pid,
        started,
        console,
        console_reader: Some(console_reader),
        stderr_reader: Some(stderr_reader),
        finished,
        daemons,
        processes,
        ended: false,
    })
}

impl Running {
    /// The virtiofsd processes serving the boot's shares (in the order of
    /// [`VmConfig::shares`]).
    pub fn daemons(&self) -> Option<&crate::virtiofs::Daemons> {
        self.daemons.as_ref()
    }

    /// The console so far.
    pub fn console(&self) -> String {
        let bytes = self.console.lock().map(|c| c.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    }

    /// Waits until the console contains `text` (true) or `timeout` passed (false).
    pub fn wait_for_console(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.console().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills QEMU with SIGKILL (no chance to flush anything: what the guest made durable is
    /// on the host, the rest is lost). [`Running::finish`] then reports the kill as a timeout
    /// or a QEMU failure.
    pub fn kill(&self) {
        // Quiet: QEMU may have ended by itself a moment ago.
        let _ = Command::new("kill").args(["-9", &self.pid.to_string()]).stderr(Stdio::null()).status();
    }

    /// Waits for QEMU to end (killing it after the config's timeout), stops the boot's
    /// virtiofsd processes and decodes the exit.
    pub fn finish(mut self) -> Result<Outcome> {
        let config = self.config.clone();
        let remaining = config.timeout.saturating_sub(self.started.elapsed());
        let status = match self.finished.recv_timeout(remaining) {
            Ok(status) => {
                self.ended = true;
                Some(status.map_err(|e| format!("waiting for QEMU: {e}"))?)
            }
            Err(_) => {
                self.kill();
                let _ = self.finished.recv();
                self.ended = true;
                None
            }
        };
        let wall = self.started.elapsed();
        untrack(self.pid);
        let mut forks = Vec::new();
        if let Some(host) = self.processes.take() {
            forks = host.fork_timings();
            host.shutdown();
        }
        if let Some(mut daemons) = self.daemons.take() {
            daemons.stop();
        }
        if let Some(reader) = self.console_reader.take() {
            let _ = reader.join();
        }
        let console = self.console();
        let stderr = self.stderr_reader.take().and_then(|r| r.join().ok()).unwrap_or_default();
        if self.echo && !stderr.is_empty() {
            eprint!("{stderr}");
        }
        let exit = match status {
            None => Exit::Timeout,
            Some(status) => decode_boot_exit(&config, status.code(), &console, &stderr),
        };
        Ok(Outcome { exit, console, stderr, wall, forks })
    }
}

/// A guest whose handle is dropped without [`Running::finish`] (a test assertion failed while
/// it ran, an early `?`) is killed: no QEMU outlives the code that started it.
impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            self.kill();
            let _ = self.finished.recv_timeout(Duration::from_secs(5));
            untrack(self.pid);
        }
    }
}

/// Quotes an app argument for the kernel command line (see libos `cmdline`): words with spaces,
/// quotes or backslashes get double quotes and escapes; an empty word becomes `""`.
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\') {
        return arg.into();
    }
    let mut quoted = String::from("\"");
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The kernel command line for kernel `options` and app `args`.
pub fn kernel_cmdline(options: &str, args: &[String]) -> String {
    let mut line = options.trim().to_string();
    if !args.is_empty() {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str("--");
        for arg in args {
            line.push(' ');
            line.push_str(&quote_arg(arg));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_status_decodes_to_guest_code() {
        assert_eq!(decode_exit(Arch::X86_64, Some(7), "", ""), Exit::Code(3));
        assert_eq!(decode_exit(Arch::X86_64, Some(1), "", ""), Exit::Code(0));
        assert_eq!(decode_exit(Arch::X86_64, Some(255), "", ""), Exit::Code(127));
        // Codes above 127: the device's 7 bits plus the printed line (SIGTERM: 143).
        assert_eq!(decode_exit(Arch::X86_64, Some(31), "done\nlibos: exit code 143\n", ""), Exit::Code(143));
        assert_eq!(decode_exit(Arch::X86_64, Some(31), "libos: exit code 144\n", ""), Exit::Code(15), "bits disagree");
        assert_eq!(decode_exit(Arch::X86_64, Some(31), "libos: exit code 15\n", ""), Exit::Code(15));
        assert_eq!(decode_exit(Arch::Aarch64, Some(143), "", ""), Exit::Code(143));
    }

    #[test]
    fn qemu_warnings_are_not_failures() {
        let warning = "qemu-system-x86_64: warning: icount sleep disabled and no active timers\n";
        assert_eq!(decode_exit(Arch::X86_64, Some(1), "", warning), Exit::Code(0));
    }

    #[test]
    fn qemu_errors_are_not_guest_codes() {
        let stderr = "qemu-system-x86_64: -m 1k: Parameter 'size' expects a non-negative number\n";
        assert!(matches!(decode_exit(Arch::X86_64, Some(1), "", stderr), Exit::QemuFailed(Some(1), _)));
        assert!(matches!(decode_exit(Arch::X86_64, Some(2), "", ""), Exit::QemuFailed(Some(2), _)));
        assert!(matches!(decode_exit(Arch::X86_64, None, "", ""), Exit::QemuFailed(None, _)));
    }

    #[test]
    fn power_off_without_device_reads_the_printed_code() {
        let console = "hello\nlibos: exit code 3; no isa-debug-exit device, powering off\n";
        assert_eq!(decode_exit(Arch::X86_64, Some(0), console, ""), Exit::Code(3));
        assert_eq!(decode_exit(Arch::X86_64, Some(0), "hello\n", ""), Exit::NoCode);
    }

    #[test]
    fn aarch64_exit_status_is_the_code() {
        assert_eq!(decode_exit(Arch::Aarch64, Some(3), "", ""), Exit::Code(3));
        assert_eq!(decode_exit(Arch::Aarch64, Some(0), "", ""), Exit::NoCode);
        let console = "libos: exit code 5; no semihosting, powering off\n";
        assert_eq!(decode_exit(Arch::Aarch64, Some(0), console, ""), Exit::Code(5));
        let mut config = VmConfig::new(Arch::Aarch64, PathBuf::from("hello.Image"));
        assert_eq!(decode_boot_exit(&config, Some(0), "hello\n", ""), Exit::Code(0));
        config.debug_exit = false;
        assert_eq!(decode_boot_exit(&config, Some(0), "hello\n", ""), Exit::NoCode);
        assert_eq!(decode_boot_exit(&config, Some(0), console, ""), Exit::Code(5));
    }

    #[test]
    fn machines_belong_to_one_arch_and_parse() {
        assert_eq!(Machine::default_for(Arch::Aarch64), Machine::VirtGicv3);
        assert_eq!(Machine::default_for(Arch::X86_64), Machine::Microvm);
        assert_eq!("virt".parse::<Machine>(), Ok(Machine::VirtGicv3));
        assert_eq!("virt-gicv2".parse::<Machine>(), Ok(Machine::VirtGicv2));
        assert!("pc".parse::<Machine>().is_err());
        for m in Machine::ALL {
            assert_eq!(m.name().parse::<Machine>(), Ok(m));
        }
        let mut config = VmConfig::new(Arch::Aarch64, PathBuf::from("/nonexistent"));
        config.machine = Machine::VirtGicv2;
        config.debug_exit = true;
        let args: Vec<String> = config.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let joined = args.join(" ");
        assert!(joined.contains("-M virt,gic-version=2 -cpu cortex-a72"), "{joined}");
        assert!(joined.contains("-semihosting-config enable=on,target=native"), "{joined}");
        config.machine = Machine::Q35;
        let error = run(&config, false).unwrap_err().to_string();
        assert!(error.contains("not an aarch64 machine"), "{error}");
    }

    #[test]
    fn every_boot_has_an_rng_on_its_transport_unless_turned_off() {
        for machine in Machine::ALL {
            let mut config = VmConfig::new(machine.arch(), PathBuf::from("/nonexistent"));
            config.machine = machine;
            let joined = |config: &VmConfig| config.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ");
            let pci = VirtioTransport::default_for(machine) == VirtioTransport::Pci;
            let with = joined(&config);
            assert_eq!(with.contains("-device virtio-rng-pci,disable-legacy=on"), pci, "{with}");
            assert_eq!(with.contains("-device virtio-rng-device"), !pci, "{with}");
            config.icount = true;
            assert!(!joined(&config).contains("virtio-rng"), "{machine:?}: no rng when the clock jumps");
            config.icount_sleep = true;
            assert!(joined(&config).contains("virtio-rng"), "{machine:?}: an rng when the clock follows real time");
            config.rng = false;
            assert!(!joined(&config).contains("virtio-rng"), "{machine:?}");
        }
        assert_eq!(rng_args(VirtioTransport::MmioLegacy), ["-device", "virtio-rng-device"]);
    }

    #[test]
    fn the_nic_follows_each_machines_transport() {
        for machine in Machine::ALL {
            let mut config = VmConfig::new(machine.arch(), PathBuf::from("/nonexistent"));
            config.machine = machine;
            config.net = Some(crate::net::NetConfig::user(Vec::new()));
            let args: Vec<String> = config.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            let joined = args.join(" ");
            assert!(joined.contains("-netdev user,id=net0,restrict=on"), "{joined}");
            let pci = matches!(machine, Machine::Q35 | Machine::MicrovmPcie);
            assert_eq!(joined.contains("-device virtio-net-pci,netdev=net0"), pci, "{joined}");
            assert_eq!(joined.contains("-device virtio-net-device,netdev=net0"), !pci, "{joined}");
            assert_eq!(joined.contains("virtio-mmio.force-legacy=false"), !pci, "{joined}");
            config.virtio_transport = Some(VirtioTransport::Pci);
            let joined: Vec<String> = config.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            assert!(joined.join(" ").contains("virtio-net-pci"), "{machine:?}: an explicit transport wins");
        }
    }

    #[test]
    fn memory_sizes_parse_like_qemu() {
        assert_eq!(parse_memory("64"), Some(64 << 20));
        assert_eq!(parse_memory("8M"), Some(8 << 20));
        assert_eq!(parse_memory("1200K"), Some(1200 << 10));
        assert_eq!(parse_memory("1G"), Some(1 << 30));
        assert_eq!(parse_memory("1.5G"), Some(3 << 29));
        assert_eq!(parse_memory("lots"), None);
        assert_eq!(parse_memory("-1M"), None);
    }

    #[test]
    fn memory_smaller_than_the_image_is_refused() {
        let image = crate::floor::floor_image().unwrap();
        let mut config = VmConfig::new(Arch::X86_64, image);
        config.memory = "1M".into();
        let error = run(&config, false).unwrap_err().to_string();
        assert!(error.contains("smaller than the image"), "{error}");
    }

    #[test]
    fn cmdline_quotes_args_that_need_it() {
        let args: Vec<String> = ["--exit", "3", "two words", "", r#"a"b\c"#].map(String::from).into();
        assert_eq!(kernel_cmdline("bootstats", &args), r#"bootstats -- --exit 3 "two words" "" "a\"b\\c""#);
        assert_eq!(kernel_cmdline("", &[]), "");
        assert_eq!(kernel_cmdline(" loglevel=info ", &[]), "loglevel=info");
    }
}
