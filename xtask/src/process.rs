//! The process host: every process of a guest program runs in its own VM, and this is the
//! VMM side that makes and joins those VMs (issue 17; the guest side is posix-shim's `process`
//! module and libos's `control`).
//!
//! ```text
//!   ./x run ... --processes N
//!      |
//!      |  ProcessHost (one per run)                        per VM: a supervisor thread
//!      |    table: pid -> VM (QEMU, QMP, control socket,    reading its control socket
//!      |           its virtiofsd copies, its parent)
//!      v
//!   QEMU pid 1 --fork--> stop, migrate to a file, cont --> spare QEMU (-incoming defer):
//!      ^  virtio console <-> ctl-1.sock                       migrate-incoming, now pid 2
//!      |  QMP <-> qmp-1.sock                                  ^  its sockets, its own virtiofsd
//!      |                                                      |  (which takes over the open
//!      +-- "reply N forked 2"            "reply N child 2 1" -+   files from the first one)
//! ```
//!
//! - **Fork** is a whole-VM copy made with QEMU's own migration: the parent is stopped, its
//!   state (RAM, CPUs, devices, and through vhost-user's device-state transfer virtiofsd's
//!   table of open files) is written to a file, the parent continues, and a QEMU with the same
//!   command line loads the file (`migrate-incoming`). That QEMU is a spare started after the
//!   previous fork and waiting with `-incoming defer`, so only the first fork of a run waits
//!   for a QEMU to start. Both sides use the `mapped-ram` capability: RAM pages sit at fixed
//!   offsets in the file and load with plain reads (a child ran about 140 ms after the request
//!   with the stream format, about 35 ms with this). Both VMs resume inside the guest's `fork`
//!   call, waiting on their control channel; each then hears who it is. The parent hears it
//!   first, before the child runs: a child can end at once, and its parent must know it
//!   before it hears that it ended.
//! - **Control channel**: a virtio console per VM whose chardev connects to a Unix socket this
//!   host listens on (QEMU is the client, so no byte is ever written before the host listens).
//!   The lines are `libos_process_protocol`'s.
//! - **Exit**: a guest reports its wait status (`exit STATUS`) just before it powers off; the
//!   host hands it to the parent (`event exited PID STATUS`). A VM that ends without a report
//!   (killed, crashed) counts as killed by `SIGKILL`, or by the signal the host sent it.
//! - **Clean-up**: everything the host started is tracked by PID: when the first process
//!   ends, on Ctrl-C (through `qemu::kill_running` and virtiofsd's own list) and when the host
//!   is dropped, every child QEMU and its virtiofsd processes are killed and the sockets and
//!   state files removed with their private directory.
//! - **Limit**: at most `limit` processes live at once; a fork beyond it fails with `EAGAIN`.
//! - **Groups and sessions**: the table holds every process's group and session, so
//!   `setpgid`, `setsid`, `getpgid`/`getsid` of another process and signals to a group or to
//!   everyone are decided here, with Linux's rules ([`groups`]).
//!
//! What a child does not share with its parent: the console input, network forwards (a child
//! gets the same NIC on a restricted user network without forwards, as two QEMUs cannot
//! listen on one host port) and disks (a child's disk writes go to a temporary overlay,
//! QEMU's `snapshot=on`: two VMs caching one ext2 volume would corrupt it). The image under
//! a child's overlay is the parent's live one (no image lock between them): blocks the child
//! had not cached at the fork, it reads as the parent has written them since.

mod fork;
mod groups;
mod offsets;
mod pipes;
mod qmp;
mod ram;

use crate::Result;
use crate::qemu::VmConfig;
use libos_process_protocol::{Event, FileId, HostMessage, Pid, Reply, Request, RequestKind};
use pipes::{Outbox, Pipes};
use fork::SpareSlot;
use qmp::Qmp;
use ram::{VmRam, clear_ram, ram_base};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a new QEMU may take to connect its sockets, and a migration to finish.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Processes alive at once unless `--processes N` says otherwise.
pub const DEFAULT_LIMIT: usize = 16;
const EAGAIN: i32 = nix::errno::Errno::EAGAIN as i32;
const ENOMEM: i32 = nix::errno::Errno::ENOMEM as i32;
const ESRCH: i32 = nix::errno::Errno::ESRCH as i32;
const SIGKILL: u32 = 9;

/// Where the host's time went in one fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkTiming {
    /// The parent stopped and its state saved (QEMU's migration to a file).
    pub saved: Duration,
    /// From the request to the child running (saved, a new QEMU started and loaded the state).
    pub running: Duration,
}

/// The console a run collects (every VM's serial output lands here).
pub type Console = Arc<Mutex<Vec<u8>>>;

/// A child's QEMU and the thread that copies its console into the run's.
struct ChildQemu {
    process: Child,
    console: Option<std::thread::JoinHandle<()>>,
}

impl ChildQemu {
    /// Waits for QEMU to end (its exit code), then for the last of its console to be copied:
    /// what a process printed is in the run's console before its parent hears it ended (a
    /// shell's `tr ...; echo` prints in that order, as on Linux).
    fn wait(mut self) -> Option<i32> {
        let code = self.process.wait().ok().and_then(|status| status.code());
        if let Some(console) = self.console.take() {
            let _ = console.join();
        }
        code
    }

    fn kill(mut self) {
        let _ = self.process.kill();
        self.wait();
    }
}

/// One VM of the run.
struct Vm {
    parent: Pid,
    /// Its process group and session (a child starts in its parent's).
    pgid: Pid,
    sid: Pid,
    /// Whether it called `execve` since its fork (a parent can no longer move it).
    execed: bool,
    /// QEMU's host PID.
    qemu: u32,
    /// The control socket (writes: replies and events).
    control: Arc<Mutex<UnixStream>>,
    /// QMP, for stop/cont/migrate.
    qmp: Arc<Mutex<Qmp>>,
    /// The status the guest reported before powering off.
    reported: Option<u32>,
    /// The signal the host killed it with.
    killed: Option<u32>,
    /// The QEMU process of a child (the first VM's belongs to `qemu::Running`).
    process: Option<ChildQemu>,
    /// A child's virtiofsd copies.
    daemons: Option<crate::virtiofs::Daemons>,
    /// The VM's RAM (QEMU's shared memory file), opened at the first pipe transfer.
    ram: Option<std::fs::File>,
    /// The file its program runs from, as it reported ([`RequestKind::Text`]; a child
    /// starts with its parent's).
    text: Option<FileId>,
    /// Whether it reported a program of its own (after `execve`; the first process at start).
    runs_own_program: bool,
    /// `vfork` parents waiting for it to run a program of its own or end: (parent, request).
    vfork_waiters: Vec<(Pid, u32)>,
}

struct Shared {
    config: VmConfig,
    limit: usize,
    console: Console,
    echo: bool,
    dir: tempfile::TempDir,
    table: Mutex<Table>,
    forks: Mutex<Vec<ForkTiming>>,
    /// The QEMU the next fork loads its child into, once a first fork happened.
    spare: Mutex<SpareSlot>,
    /// Signalled when a spare being started is ready (or failed).
    spare_ready: std::sync::Condvar,
    /// Spares started so far (their socket names).
    spares_started: std::sync::atomic::AtomicU32,
}

struct Table {
    vms: BTreeMap<Pid, Vm>,
    /// Pipes whose ends are in several VMs.
    pipes: Pipes,
    /// File offsets shared between VMs.
    offsets: offsets::Offsets,
    next_pid: Pid,
    /// Set once the first process ended: no more forks, every VM is being stopped.
    closing: bool,
}

impl Table {
    /// Every process's parent, group and session.
    fn memberships(&self) -> BTreeMap<Pid, groups::Membership> {
        self.vms.iter().map(|(&pid, vm)| (pid, groups::Membership { parent: vm.parent, pgid: vm.pgid, sid: vm.sid, execed: vm.execed })).collect()
    }
}

/// The process host of one run (see the module docs).
pub struct ProcessHost {
    shared: Arc<Shared>,
    first: Option<Listeners>,
}

/// The sockets a VM's QEMU connects to, bound before it starts.
struct Listeners {
    control: UnixListener,
    qmp: UnixListener,
}

impl ProcessHost {
    /// A host for a run of `config` with at most `limit` processes; children's output goes to
    /// `console` (and to stdout when `echo`).
    pub fn new(config: &VmConfig, limit: usize, console: Console, echo: bool) -> Result<ProcessHost> {
        let dir = tempfile::Builder::new().prefix("libos-processes-").tempdir()?;
        let shared = Arc::new(Shared {
            config: config.clone(),
            limit: limit.max(1),
            console,
            echo,
            dir,
            table: Mutex::new(Table { vms: BTreeMap::new(), pipes: Pipes::default(), offsets: offsets::Offsets::default(), next_pid: 2, closing: false }),
            forks: Mutex::new(Vec::new()),
            spare: Mutex::new(SpareSlot::Empty),
            spare_ready: std::sync::Condvar::new(),
            spares_started: std::sync::atomic::AtomicU32::new(0),
        });
        let first = Some(shared.listen("1")?);
        Ok(ProcessHost { shared, first })
    }

    /// The QEMU arguments of the first VM (pid 1): its control channel and QMP.
    pub fn first_vm_args(&self) -> Vec<String> {
        self.shared.vm_args("1")
    }

    /// Connects the first VM (QEMU host PID `qemu`, just started) and starts supervising it.
    pub fn attach_first(&mut self, qemu: u32) -> Result<()> {
        let listeners = self.first.take().ok_or("the first VM is attached already")?;
        let (control, qmp) = self.shared.accept(&listeners, qemu)?;
        self.shared.add_vm(1, 0, qemu, control, qmp, None, None)?;
        Ok(())
    }

    /// Stops every child VM (the first process ended or the run is over).
    pub fn shutdown(&self) {
        let children: Vec<Vm> = {
            let mut table = lock(&self.shared.table);
            table.closing = true;
            let pids: Vec<Pid> = table.vms.keys().copied().collect();
            pids.into_iter().filter_map(|pid| table.vms.remove(&pid)).collect()
        };
        // A spare still starting is waited for (its thread stops it, seeing `closing`): `./x`
        // may exit right after this, and a spare left to its thread would outlive the run.
        let mut slot = lock(&self.shared.spare);
        while matches!(*slot, SpareSlot::Starting) {
            slot = self.shared.spare_ready.wait(slot).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if let SpareSlot::Ready(spare) = std::mem::replace(&mut *slot, SpareSlot::Empty) {
            spare.stop();
        }
        drop(slot);
        for mut vm in children {
            if let Some(process) = vm.process.take() {
                process.kill();
                crate::qemu::untrack(vm.qemu);
            }
            if let Some(mut daemons) = vm.daemons.take() {
                daemons.stop();
            }
        }
    }

    /// Where the time of every fork so far went.
    pub fn fork_timings(&self) -> Vec<ForkTiming> {
        lock(&self.shared.forks).clone()
    }
}

impl Drop for ProcessHost {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn socket(&self, name: &str, kind: &str) -> PathBuf {
        self.dir.path().join(format!("{kind}-{name}.sock"))
    }

    fn listen(&self, name: &str) -> Result<Listeners> {
        let control = UnixListener::bind(self.socket(name, "ctl"))?;
        let qmp = UnixListener::bind(self.socket(name, "qmp"))?;
        control.set_nonblocking(true)?;
        qmp.set_nonblocking(true)?;
        Ok(Listeners { control, qmp })
    }

    /// QEMU arguments for the VM whose sockets are called `name`: QMP and the control console,
    /// both connecting to us.
    fn vm_args(&self, name: &str) -> Vec<String> {
        let serial = match self.config.transport() {
            crate::qemu::VirtioTransport::Pci => "virtio-serial-pci,disable-legacy=on",
            _ => "virtio-serial-device",
        };
        // The RAM in a shared memory file, which pipe transfers read and write (a boot with
        // virtio-fs shares has one already).
        let memory = if self.config.shares.is_empty() { crate::virtiofs::shared_memory_args(&self.config.memory) } else { Vec::new() };
        memory.into_iter().chain([
            "-chardev".into(),
            format!("socket,id=libos-qmp,path={}", self.socket(name, "qmp").display()),
            "-mon".into(),
            "chardev=libos-qmp,mode=control".into(),
            "-chardev".into(),
            format!("socket,id=libos-ctl,path={}", self.socket(name, "ctl").display()),
            "-device".into(),
            serial.into(),
            "-device".into(),
            "virtconsole,chardev=libos-ctl".into(),
        ])
        .collect()
    }

    /// Waits for QEMU `qemu` to connect to both listeners.
    fn accept(&self, listeners: &Listeners, qemu: u32) -> Result<(UnixStream, Qmp)> {
        let deadline = Instant::now() + START_TIMEOUT;
        let accept_one = |listener: &UnixListener| -> Result<UnixStream> {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false)?;
                        return Ok(stream);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline || !alive(qemu) {
                            return Err(format!("QEMU {qemu} did not connect its control sockets").into());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let qmp = Qmp::new(accept_one(&listeners.qmp)?)?;
        let control = accept_one(&listeners.control)?;
        Ok((control, qmp))
    }

    #[allow(clippy::too_many_arguments)]
    fn add_vm(
        self: &Arc<Self>,
        pid: Pid,
        parent: Pid,
        qemu: u32,
        control: UnixStream,
        qmp: Qmp,
        process: Option<ChildQemu>,
        daemons: Option<crate::virtiofs::Daemons>,
    ) -> Result<Arc<Mutex<UnixStream>>> {
        let reader = control.try_clone()?;
        let control = Arc::new(Mutex::new(control));
        let mut table = lock(&self.table);
        // A child starts in its parent's group and session (its memory, a copy, says the same).
        let (pgid, sid) = table.vms.get(&parent).map_or((pid, pid), |p| (p.pgid, p.sid));
        let qmp = Arc::new(Mutex::new(qmp));
        let vm = Vm { parent, pgid, sid, execed: false, qemu, control: control.clone(), qmp, reported: None, killed: None, process, daemons, ram: None, text: None, runs_own_program: false, vfork_waiters: Vec::new() };
        table.vms.insert(pid, vm);
        drop(table);
        let shared = self.clone();
        std::thread::spawn(move || shared.supervise(pid, reader));
        Ok(control)
    }

    /// Reads VM `pid`'s requests until its channel closes.
    fn supervise(self: Arc<Self>, pid: Pid, control: UnixStream) {
        let mut lines = BufReader::new(control);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = line.trim_end();
            let Some(Request { id, kind }) = Request::parse(text) else {
                eprintln!("process host: process {pid} sent a line that is not a request: {text:?}");
                continue;
            };
            match kind {
                RequestKind::Fork => {
                    // A fork that worked was answered already, before its child could run.
                    let failed = match self.fork(pid, id) {
                        Ok(None) => None,
                        Ok(Some(reply)) => Some(reply),
                        Err(e) => {
                            eprintln!("process host: fork of process {pid} failed: {e}");
                            Some(Reply::Error { errno: ENOMEM })
                        }
                    };
                    if let Some(reply) = failed {
                        self.send(pid, HostMessage::Reply(id, reply));
                    }
                }
                RequestKind::Kill { pid: target, signal } => {
                    let reply = self.kill(pid, target, signal);
                    self.send(pid, HostMessage::Reply(id, reply));
                }
                RequestKind::Exit { status } => {
                    if let Some(vm) = lock(&self.table).vms.get_mut(&pid) {
                        vm.reported = Some(status);
                    }
                }
                RequestKind::SetPgid { pid: target, pgid } => {
                    let reply = self.regroup(pid, |processes| groups::setpgid(processes, pid, target, pgid));
                    self.send(pid, HostMessage::Reply(id, reply));
                }
                RequestKind::Exec => {
                    if let Some(vm) = lock(&self.table).vms.get_mut(&pid) {
                        vm.execed = true;
                    }
                    self.send(pid, HostMessage::Reply(id, Reply::Done));
                }
                RequestKind::Text { text } => {
                    // Every other VM hears before the reply lets this one go on (its program,
                    // or the `execve` that loaded it, then runs).
                    let mut out = Outbox::new();
                    let mut released = Vec::new();
                    {
                        let mut table = lock(&self.table);
                        let before = table.vms.get_mut(&pid).and_then(|vm| {
                            vm.runs_own_program = true;
                            released = std::mem::take(&mut vm.vfork_waiters);
                            vm.text.replace(text)
                        });
                        for &other in table.vms.keys().filter(|&&other| other != pid) {
                            if let Some(before) = before {
                                out.push((other, HostMessage::Event(Event::Text { text: before, running: false })));
                            }
                            out.push((other, HostMessage::Event(Event::Text { text, running: true })));
                        }
                    }
                    // A `vfork` parent goes on once every VM knows what its child runs.
                    out.extend(released.into_iter().map(|(parent, request)| (parent, HostMessage::Reply(request, Reply::Done))));
                    out.push((pid, HostMessage::Reply(id, Reply::Done)));
                    self.send_all(out);
                }
                RequestKind::VforkWait { child } => {
                    let mut table = lock(&self.table);
                    match table.vms.get_mut(&child) {
                        Some(vm) if !vm.runs_own_program && vm.parent == pid => vm.vfork_waiters.push((pid, id)),
                        _ => {
                            drop(table);
                            self.send(pid, HostMessage::Reply(id, Reply::Done));
                        }
                    }
                }
                RequestKind::Namespace { change } => {
                    // The other VMs make the change before this one hears it is done (a child's
                    // `mount` is in its parent's table by the time the parent sees it exit).
                    let mut out: Outbox = lock(&self.table)
                        .vms
                        .keys()
                        .filter(|&&other| other != pid)
                        .map(|&other| (other, HostMessage::Event(Event::Namespace { change })))
                        .collect();
                    out.push((pid, HostMessage::Reply(id, Reply::Done)));
                    self.send_all(out);
                }
                RequestKind::SetSid => {
                    let reply = self.regroup(pid, |processes| groups::setsid(processes, pid));
                    self.send(pid, HostMessage::Reply(id, reply));
                }
                RequestKind::GetPgid { pid: target } | RequestKind::GetSid { pid: target } => {
                    let session = matches!(kind, RequestKind::GetSid { .. });
                    let found = lock(&self.table).vms.get(&target).map(|vm| if session { vm.sid } else { vm.pgid });
                    let reply = found.map_or(Reply::Error { errno: ESRCH }, |id| Reply::Id { id });
                    self.send(pid, HostMessage::Reply(id, reply));
                }
                pipe_request => self.pipe_request(pid, id, pipe_request),
            }
        }
        // The channel closes when QEMU ends; the first VM's end is `qemu::Running`'s to see.
        if pid != 1 {
            self.reap(pid);
        }
    }

    /// A pipe or shared-offset request of VM `pid`: served under the table's lock, its
    /// messages sent after.
    fn pipe_request(&self, pid: Pid, id: u32, kind: RequestKind) {
        let mut out = Outbox::new();
        {
            let mut table = lock(&self.table);
            let table = &mut *table;
            VmRam::open_all(&mut table.vms);
            let ram = VmRam { vms: &table.vms, base: ram_base(self.config.arch) };
            match kind {
                RequestKind::PipeNew { readers, writers } => {
                    let pipe = table.pipes.create(pid, readers, writers, &mut out);
                    out.insert(0, (pid, HostMessage::Reply(id, Reply::Pipe { pipe })));
                }
                RequestKind::PipeEnds { pipe, readers, writers } => table.pipes.set_ends(&ram, pipe, pid, readers, writers, &mut out),
                RequestKind::PipeRead { pipe, flags, segments } => {
                    table.pipes.request(&ram, pipe, pid, id, false, flags, segments.as_slice(), &mut out);
                }
                RequestKind::PipeWrite { pipe, flags, segments } => {
                    table.pipes.request(&ram, pipe, pid, id, true, flags, segments.as_slice(), &mut out);
                }
                RequestKind::Cancel { request } => {
                    table.pipes.cancel(pid, request, &mut out);
                    out.push((pid, HostMessage::Reply(id, Reply::Done)));
                }
                RequestKind::OffsetNew { value } => {
                    let offset = table.offsets.create(pid, value);
                    out.push((pid, HostMessage::Reply(id, Reply::Id { id: offset })));
                }
                RequestKind::OffsetLock { offset } => table.offsets.lock(pid, id, offset, &mut out),
                RequestKind::OffsetUnlock { offset, value } => table.offsets.unlock(pid, id, offset, value, &mut out),
                RequestKind::OffsetDrop { offset } => {
                    table.offsets.drop_holder(pid, offset, &mut out);
                    out.insert(0, (pid, HostMessage::Reply(id, Reply::Done)));
                }
                RequestKind::Fork
                | RequestKind::Kill { .. }
                | RequestKind::Exit { .. }
                | RequestKind::SetPgid { .. }
                | RequestKind::SetSid
                | RequestKind::Exec
                | RequestKind::Text { .. }
                | RequestKind::Namespace { .. }
                | RequestKind::VforkWait { .. }
                | RequestKind::GetPgid { .. }
                | RequestKind::GetSid { .. } => {}
            }
        }
        self.send_all(out);
    }

    fn send_all(&self, out: Outbox) {
        for (pid, message) in out {
            self.send(pid, message);
        }
    }

    fn send(&self, pid: Pid, message: HostMessage) {
        let control = lock(&self.table).vms.get(&pid).map(|vm| vm.control.clone());
        if let Some(control) = control {
            let _ = write_line(&control, &message);
        }
    }

    /// Copies a child's console into the run's (the thread that does it), and its QEMU errors
    /// to stderr.
    fn forward_output(&self, stdout: Option<std::process::ChildStdout>, stderr: Option<std::process::ChildStderr>) -> Option<std::thread::JoinHandle<()>> {
        let console = stdout.map(|stdout| crate::qemu::copy_console(stdout, self.console.clone(), self.echo, None));
        if let Some(stderr) = stderr {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(std::result::Result::ok) {
                    eprintln!("process host, a child's QEMU: {line}");
                }
            });
        }
        console
    }

    /// `kill` from `from` to `target`: SIGKILL ends the VM, other signals go to its guest.
    /// `target` as `kill` takes it: a pid, 0 (the caller's group), -1 (everyone but process 1)
    /// or `-PGID`. The caller itself is never signalled here (its guest does that), so `ESRCH`
    /// means no *other* process was found.
    fn kill(&self, from: Pid, target: i64, signal: u32) -> Reply {
        let receivers = groups::receivers(&lock(&self.table).memberships(), from, target);
        if receivers.is_empty() {
            return Reply::Error { errno: ESRCH };
        }
        for pid in receivers {
            match signal {
                0 => {}
                SIGKILL => self.kill_vm(pid, SIGKILL),
                _ => self.send(pid, HostMessage::Event(Event::Signal { signal, from })),
            }
        }
        Reply::Done
    }

    /// Applies the group change `rule` decides for a request of `caller`; the process moved
    /// (when not the caller, which changes its own copy on the reply) and its parent (when
    /// not the caller) hear of it.
    fn regroup(&self, caller: Pid, rule: impl FnOnce(&BTreeMap<Pid, groups::Membership>) -> std::result::Result<groups::Moved, i32>) -> Reply {
        let mut out = Outbox::new();
        {
            let mut table = lock(&self.table);
            let moved = match rule(&table.memberships()) {
                Ok(moved) => moved,
                Err(errno) => return Reply::Error { errno },
            };
            let Some(vm) = table.vms.get_mut(&moved.pid) else { return Reply::Error { errno: ESRCH } };
            vm.pgid = moved.pgid;
            vm.sid = moved.sid;
            if moved.pid != caller {
                out.push((moved.pid, HostMessage::Event(Event::Group { pgid: moved.pgid, sid: moved.sid })));
            }
            if vm.parent != caller && vm.parent != 0 {
                out.push((vm.parent, HostMessage::Event(Event::ChildGroup { pid: moved.pid, pgid: moved.pgid })));
            }
        }
        self.send_all(out);
        Reply::Done
    }

    /// Ends VM `pid`'s QEMU with SIGKILL, recording `signal` as how it died.
    fn kill_vm(&self, pid: Pid, signal: u32) {
        let qemu = {
            let mut table = lock(&self.table);
            let Some(vm) = table.vms.get_mut(&pid) else { return };
            vm.killed = Some(signal);
            vm.qemu
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(qemu as i32), nix::sys::signal::Signal::SIGKILL);
    }

    /// VM `pid` ended: wait for its QEMU, stop its virtiofsd, tell its parent.
    fn reap(&self, pid: Pid) {
        let Some(mut vm) = lock(&self.table).vms.remove(&pid) else { return };
        let mut code = None;
        if let Some(process) = vm.process.take() {
            code = process.wait();
            crate::qemu::untrack(vm.qemu);
        }
        if let Some(mut daemons) = vm.daemons.take() {
            daemons.stop();
        }
        let status = match (vm.killed, vm.reported) {
            (Some(signal), _) => signal,
            (None, Some(status)) => status,
            (None, None) => match crate::qemu::decode_exit(self.config.arch, code, "", "") {
                crate::qemu::Exit::Code(code) => ((code & 0xff) as u32) << 8,
                _ => SIGKILL,
            },
        };
        // Orphans go to the first process, as Linux re-parents them to init.
        let mut out = Outbox::new();
        let mut table = lock(&self.table);
        {
            let table = &mut *table;
            VmRam::open_all(&mut table.vms);
            let ram = VmRam { vms: &table.vms, base: ram_base(self.config.arch) };
            table.pipes.vm_ended(&ram, pid, &mut out);
            table.offsets.vm_ended(pid, &mut out);
            if let Some(text) = vm.text {
                for &other in table.vms.keys() {
                    out.push((other, HostMessage::Event(Event::Text { text, running: false })));
                }
            }
            out.extend(vm.vfork_waiters.drain(..).map(|(parent, request)| (parent, HostMessage::Reply(request, Reply::Done))));
        }
        // The first process hears of each adoption with the orphan's group (its `wait` and
        // `waitpid(-PGID)` then count it, as init's do). Written under the table's lock: the
        // orphan's own end, reaped under the same lock, must reach the first process after
        // its adoption, never before (it would then adopt a child that is already gone).
        let first = table.vms.get(&1).map(|vm| vm.control.clone());
        for (&orphan, other) in table.vms.iter_mut() {
            if other.parent == pid {
                other.parent = 1;
                if let Some(first) = &first {
                    let _ = write_line(first, &HostMessage::Event(Event::ChildGroup { pid: orphan, pgid: other.pgid }));
                }
            }
        }
        let parent = table.vms.get(&vm.parent).map(|p| p.control.clone());
        drop(table);
        self.send_all(out);
        if let Some(control) = parent {
            let _ = write_line(&control, &HostMessage::Event(Event::Exited { pid, status }));
        }
    }
}

/// Writes `message` and its newline to a VM's control channel in one write, so that a VM saved
/// for a fork while a line arrives holds as little of a line as can be.
fn write_line(control: &Mutex<UnixStream>, message: &HostMessage) -> std::io::Result<()> {
    let line = format!("{message}\n");
    lock(control).write_all(line.as_bytes())
}

/// Whether host process `pid` still runs.
fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}
