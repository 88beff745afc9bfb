//! Processes: `getpid`/`getppid`, `fork` (and `vfork`, `clone` without `CLONE_VM`), `wait4`,
//! `waitid`, `kill` to another process, and the exit status the host hears.
//!
//! libos runs every process in its own VM (feature `processes`; the design is in the README's
//! "Processes"). A fork is the process host's copy of the whole VM: this module asks for it
//! over the control channel ([`libos::control`]) and the calling thread waits in that call.
//! The copy resumes in the same wait, so **both** VMs return from it: the parent with
//! `reply forked CHILD`, the child with `reply child PID PARENT`. Everything the program had
//! (memory, descriptors, signal dispositions and mask, the thread's registers) is in the
//! copy because the copy is the machine. What differs in the child is set here: its pid and
//! parent, no children of its own, no pending signals or timers (as on Linux).
//!
//! The host tells a parent when a child ends (`event exited PID STATUS`); [`on_event`] records
//! the status (a zombie until `wait4` reaps it) and sends `SIGCHLD`, or reaps it at once when
//! the program ignores `SIGCHLD` or set `SA_NOCLDWAIT`, as Linux does.
//!
//! Differences from Linux, documented rather than accidental:
//! - only the forking thread runs in the child, but a program thread that was running on
//!   another CPU at the fork is stopped only at its next system call;
//! - a file system in VM memory (ramfs, an ext2 disk's cache) is the child's own copy, not
//!   shared with the parent: only virtio-fs shares (the host's directory) are common to all
//!   processes.
//!
//! **Groups and sessions** live in the host's table, which sees every process: `setpgid`,
//! `setsid`, `getpgid`/`getsid` of another process and `kill` to a group (`kill(0)`,
//! `kill(-PGID)`) or to everyone (`kill(-1)`) are asked of the host, and each VM keeps a copy
//! of its own group and session (changed when the host says yes, or by `event group` when a
//! parent moved it) and of its children's groups (`event child-group`), which
//! `waitpid(0)`/`waitpid(-PGID)` and `waitid(P_PGID)` select by.
//!
//! Without the feature (or without a process host at run time) `fork` fails with `ENOSYS` and
//! `wait4` with `ECHILD`, the program is process 1, and group calls answer for it alone.

use core::sync::atomic::{AtomicU64, Ordering};

/// This process's id (1 until a fork makes this VM a child).
static PID: AtomicU64 = AtomicU64::new(crate::dispatch::PID);
/// The parent's id (0: none, like init).
static PARENT: AtomicU64 = AtomicU64::new(0);

/// This process's group and session (1: the first process's, which every fork inherits
/// until `setpgid`/`setsid`).
static GROUP: AtomicU64 = AtomicU64::new(crate::dispatch::PID);
static SESSION: AtomicU64 = AtomicU64::new(crate::dispatch::PID);

/// `getpgrp()`.
pub fn group() -> u64 {
    GROUP.load(Ordering::Relaxed)
}

/// Puts this process in group `pgid` (checked by `setpgid`).
pub fn set_group(pgid: u64) {
    GROUP.store(pgid, Ordering::Relaxed);
}

/// This process's session.
pub fn session() -> u64 {
    SESSION.load(Ordering::Relaxed)
}

/// Makes this process lead a new session and group `sid` (checked by `setsid`).
pub fn set_session(sid: u64) {
    SESSION.store(sid, Ordering::Relaxed);
    GROUP.store(sid, Ordering::Relaxed);
}

/// `getpid()`.
pub fn pid() -> u64 {
    PID.load(Ordering::Relaxed)
}

/// `getppid()`.
pub fn parent() -> u64 {
    PARENT.load(Ordering::Relaxed)
}

/// `si_code` and `si_status` of a child that ended with wait status `status`: `CLD_EXITED`
/// and its exit code, or `CLD_KILLED` and the signal.
pub const fn child_code(status: u32) -> (i32, u32) {
    const CLD_EXITED: i32 = 1;
    const CLD_KILLED: i32 = 2;
    if status & 0x7f == 0 { (CLD_EXITED, (status >> 8) & 0xff) } else { (CLD_KILLED, status & 0x7f) }
}

/// The wait status of an exit with `code`.
pub const fn exited_status(code: i32) -> u32 {
    ((code & 0xff) as u32) << 8
}

pub use host::*;

#[cfg(not(feature = "processes"))]
mod host {
    use libos::{Errno, Result};

    /// `fork()` without processes: `ENOSYS`.
    pub fn fork() -> Result<u64> {
        crate::dispatch::log_unsupported("system call", crate::abi::nr::FORK);
        Err(Errno::ENOSYS)
    }

    /// `vfork` without processes: as [`fork`].
    pub fn vfork() -> Result<u64> {
        fork()
    }

    /// `wait4` without processes: there are no children.
    pub fn wait4(_pid: u64, _status: u64, _options: u64, _rusage: u64) -> Result<u64> {
        Err(Errno::ECHILD)
    }

    /// `waitid` without processes: there are no children.
    pub fn waitid(_idtype: u64, _id: u64, _info: u64, _options: u64, _rusage: u64) -> Result<u64> {
        Err(Errno::ECHILD)
    }

    /// `kill` to another process: there is none.
    pub fn kill_other(_pid: i64, _sig: u64) -> Result<u64> {
        Err(Errno::ESRCH)
    }

    /// Group changes have no host to ask.
    pub fn ask_setpgid(_pid: u64, _pgid: u64) -> Result<u64> {
        Err(Errno::ENOSYS)
    }

    /// Group changes have no host to ask.
    pub fn ask_setsid() -> Result<u64> {
        Err(Errno::ENOSYS)
    }

    /// No host to tell of an `execve`.
    pub fn report_exec() {}

    /// No other process to keep from writing the program's file.
    pub fn report_text(_dev: u64, _ino: u64) {}

    /// No child to wait for.
    pub fn wait_for_vfork_child(_child: u64) {}

    /// No other process shares the mount table: nothing to pass on (true: nothing failed).
    pub fn report_namespace_change(_change: &[u8]) -> bool {
        true
    }

    /// Another process's group or session: there is no other process.
    pub fn ask_id_of(_pid: u64, _session: bool) -> Result<u64> {
        Err(Errno::ESRCH)
    }

    /// Nobody to tell.
    pub fn report_exit(_status: u32) {}

    /// Nothing to listen to.
    pub fn install() {}
}

#[cfg(feature = "processes")]
mod host {
    use super::{PARENT, PID, group, set_group, set_session};
    use crate::{signal, user};
    use alloc::vec::Vec;
    use core::sync::atomic::Ordering;
    use libos::control;
    use libos::sync::{IrqSpinLock, WaitQueue};
    use libos::{Errno, Result};
    use libos_process_protocol::{Event, FileId, NamespaceChange, Pid, Reply, RequestKind};

    /// A child of this process: its pid, its process group and, once it ended, its wait
    /// status (a zombie).
    #[derive(Clone, Copy, Debug)]
    struct Child {
        pid: Pid,
        pgid: u64,
        status: Option<u32>,
    }

    /// This process's children not yet reaped. Interrupt-safe: wait conditions read it.
    static CHILDREN: IrqSpinLock<Vec<Child>> = IrqSpinLock::new(Vec::new());
    /// Woken when a child ends.
    static CHILD_ENDED: WaitQueue = WaitQueue::new();

    const WNOHANG: u64 = 1;
    const WUNTRACED: u64 = 2;
    const WEXITED: u64 = 4;
    const WCONTINUED: u64 = 8;
    const WNOWAIT: u64 = 0x0100_0000;
    const WNOTHREAD: u64 = 0x2000_0000;
    const WALL: u64 = 0x4000_0000;
    const WCLONE: u64 = 0x8000_0000;
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    const SIGCHLD: i32 = 17;

    /// Starts listening to the host's events (at program start).
    pub fn install() {
        control::set_event_handler(on_event);
    }

    /// `vfork()`: a [`fork`] whose parent waits for the child to run a program or end
    /// ([`wait_for_vfork_child`]).
    pub fn vfork() -> Result<u64> {
        let child = fork()?;
        if child != 0 {
            wait_for_vfork_child(child);
        }
        Ok(child)
    }

    /// `fork()`: the host copies this VM; returns the child's pid here and 0 in the copy.
    /// Errors: `ENOSYS` without a process host, `EAGAIN` at the process limit, `ENOMEM` when
    /// the child VM could not start.
    pub fn fork() -> Result<u64> {
        if !control::available() {
            return Err(Errno::ENOSYS);
        }
        crate::events::host_pipe::share_for_fork()?;
        crate::shared_offset::share_for_fork()?;
        warn_once_if_root_is_private();
        match control::call(RequestKind::Fork)? {
            Reply::Forked { child } => {
                CHILDREN.lock().push(Child { pid: child, pgid: group(), status: None });
                Ok(u64::from(child))
            }
            Reply::Child { pid, parent } => {
                become_child(pid, parent);
                Ok(0)
            }
            Reply::Error { errno } => Err(Errno::from_raw(errno).unwrap_or(Errno::EAGAIN)),
            _ => Err(Errno::EIO),
        }
    }

    #[cfg(feature = "fs")]
    static WARNED_PRIVATE_ROOT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// Says once, at the first fork, when the root file system lives in this VM's memory
    /// (ramfs) or cache (ext2, whose child copies write to a throw-away overlay): a child then
    /// changes its own copy, and its parent never sees those files, unlike on Linux. A host
    /// directory as root (virtio-fs) is shared by every process.
    fn warn_once_if_root_is_private() {
        #[cfg(feature = "fs")]
        if !WARNED_PRIVATE_ROOT.swap(true, Ordering::Relaxed) {
            let root = libos::fs::try_vfs().and_then(|vfs| vfs.mounts().into_iter().next());
            if let Some(root) = root.filter(|r| r.fs_name == "ramfs" || r.fs_name == "ext2") {
                log::warn!(
                    "fork: the root file system ({}) is each process's own copy: files a child changes there do not reach its parent (a host directory as root, ./x run --root DIR, is shared by all processes)",
                    root.fs_name
                );
            }
        }
    }

    /// What a fresh child changes in the copy of its parent.
    fn become_child(pid: Pid, parent: Pid) {
        PID.store(u64::from(pid), Ordering::Relaxed);
        PARENT.store(u64::from(parent), Ordering::Relaxed);
        CHILDREN.lock().clear();
        crate::thread::forget_other_threads();
        signal::forget_for_child();
    }

    /// The host's events: a child ended, a signal from another process.
    fn on_event(event: Event) {
        match event {
            Event::Exited { pid, status } => {
                {
                    let mut children = CHILDREN.lock();
                    if !children.iter().any(|c| c.pid == pid) {
                        // The host re-parents orphans to the first process, as Linux re-parents
                        // them to init (busybox's `timeout` leaves its watcher that way), and
                        // says so first (`event child-group`); should that line have been
                        // lost, the first process adopts it here, a zombie to reap.
                        if PID.load(Ordering::Relaxed) != 1 {
                            log::warn!("posix-shim: the host says {pid} ended, which is not a child of this process");
                            return;
                        }
                        children.push(Child { pid, pgid: 0, status: None });
                    }
                    let Some(child) = children.iter_mut().find(|c| c.pid == pid) else { return };
                    child.status = Some(status);
                    if signal::discards_children() {
                        children.retain(|c| c.pid != pid);
                    }
                }
                CHILD_ENDED.wake_all();
                signal::send_child_ended(pid, status);
            }
            Event::Signal { signal: sig, from } => signal::send_from_process(u64::from(sig), from),
            Event::Pipe { pipe, state } => crate::events::host_pipe::on_event(pipe, state),
            // Another process changed the mount table, which all share.
            Event::Namespace { change } => {
                #[cfg(feature = "fs")]
                crate::mounts::apply_shared_change(change.as_bytes());
                #[cfg(not(feature = "fs"))]
                let _ = change;
            }
            // Another process started or stopped running from a file: it has no writer here
            // while any does.
            Event::Text { text, running } => {
                #[cfg(feature = "fs")]
                if let Ok(vfs) = libos::fs::vfs() {
                    vfs.set_running_elsewhere(text.dev, text.ino, running);
                }
                #[cfg(not(feature = "fs"))]
                let _ = (text, running);
            }
            Event::Group { pgid, sid } => {
                set_session(u64::from(sid));
                set_group(u64::from(pgid));
            }
            // To the first process, a child it does not know is an orphan it adopts, as init
            // does on Linux (it waits for it from now on).
            Event::ChildGroup { pid, pgid } => set_child_group(pid, u64::from(pgid), PID.load(Ordering::Relaxed) == 1),
        }
    }

    /// Child `pid` is in group `pgid` now; an unknown `pid` is added when `adopt`.
    fn set_child_group(pid: Pid, pgid: u64, adopt: bool) {
        let mut children = CHILDREN.lock();
        match children.iter_mut().find(|c| c.pid == pid) {
            Some(child) => child.pgid = pgid,
            None if adopt => children.push(Child { pid, pgid, status: None }),
            None => {}
        }
    }

    /// Which children a wait asks for.
    #[derive(Clone, Copy)]
    enum Which {
        Any,
        Pid(Pid),
        Group(u64),
    }

    impl Which {
        fn matches(self, child: &Child) -> bool {
            match self {
                Which::Any => true,
                Which::Pid(pid) => child.pid == pid,
                Which::Group(pgid) => child.pgid == pgid,
            }
        }
    }

    /// Waits for (or, with `no_hang`, looks for) an ended child among `which`; reaps it unless
    /// `keep`. `Ok(None)`: `no_hang` and none has ended. Errors: `ECHILD` when no child
    /// matches, `ERESTARTSYS`/`EINTR` when a signal arrives.
    fn wait_for(which: Which, no_hang: bool, keep: bool) -> Result<Option<(Pid, u32)>> {
        let mut found = None;
        let mut none = false;
        let mut look = || {
            let mut children = CHILDREN.lock();
            if !children.iter().any(|c| which.matches(c)) {
                none = true;
                return true;
            }
            if let Some(i) = children.iter().position(|c| which.matches(c) && c.status.is_some()) {
                let child = children[i];
                if !keep {
                    children.remove(i);
                }
                found = child.status.map(|status| (child.pid, status));
                return true;
            }
            false
        };
        if no_hang {
            look();
        } else {
            signal::wait_interruptible(&CHILD_ENDED, look, None)?;
        }
        if none {
            return Err(Errno::ECHILD);
        }
        Ok(found)
    }

    /// `wait4`'s `pid`: a child, any child (-1), a child in the caller's group (0) or in group
    /// `-pid`.
    fn which(pid: i64) -> Which {
        match pid {
            -1 => Which::Any,
            0 => Which::Group(group()),
            p if p > 0 => Which::Pid(p as Pid),
            p => Which::Group(p.unsigned_abs()),
        }
    }

    /// `wait4(pid, status, options, rusage)`.
    pub fn wait4(pid: u64, status: u64, options: u64, rusage: u64) -> Result<u64> {
        if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) != 0 {
            return Err(Errno::EINVAL);
        }
        let pid = pid as i64 as i32 as i64;
        if pid == i64::from(i32::MIN) {
            return Err(Errno::ESRCH);
        }
        let Some((child, wait_status)) = wait_for(which(pid), options & WNOHANG != 0, false)? else {
            return Ok(0);
        };
        if status != 0 {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(status, wait_status as i32)? };
        }
        if rusage != 0 {
            // No CPU-time accounting per process: zeroed, as for a child that used none.
            // SAFETY: checked by `user::write`.
            unsafe { user::write(rusage, [0u64; 18])? };
        }
        Ok(u64::from(child))
    }

    /// `waitid(idtype, id, infop, options, rusage)`.
    pub fn waitid(idtype: u64, id: u64, info: u64, options: u64, rusage: u64) -> Result<u64> {
        if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE) != 0
            || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
        {
            return Err(Errno::EINVAL);
        }
        let which = match idtype {
            P_ALL => Which::Any,
            P_PID if id as i64 > 0 && id <= u64::from(i32::MAX as u32) => Which::Pid(id as Pid),
            // Since Linux 5.4, id 0 is the caller's group.
            P_PGID if id == 0 => Which::Group(group()),
            P_PGID if id as i64 > 0 => Which::Group(id),
            P_PID => return Err(Errno::EINVAL),
            _ => return Err(Errno::EINVAL),
        };
        let found = if options & WEXITED == 0 {
            // Only stops or continues asked for: there are none without job control.
            if options & WNOHANG == 0 {
                wait_for(which, true, true)?;
                return Err(Errno::ECHILD);
            }
            None
        } else {
            wait_for(which, options & WNOHANG != 0, options & WNOWAIT != 0)?
        };
        if info != 0 {
            let mut siginfo = [0u8; 128];
            if let Some((pid, status)) = found {
                let (code, value) = super::child_code(status);
                siginfo[0..4].copy_from_slice(&SIGCHLD.to_ne_bytes());
                siginfo[8..12].copy_from_slice(&code.to_ne_bytes());
                siginfo[16..20].copy_from_slice(&(pid as i32).to_ne_bytes());
                siginfo[24..28].copy_from_slice(&(value as i32).to_ne_bytes());
            }
            // SAFETY: checked by `user::write`.
            unsafe { user::write(info, siginfo)? };
        }
        if rusage != 0 {
            // SAFETY: checked by `user::write`.
            unsafe { user::write(rusage, [0u64; 18])? };
        }
        Ok(0)
    }

    /// `kill(pid, sig)` for a pid that is not this process: the host delivers it.
    pub fn kill_other(pid: i64, sig: u64) -> Result<u64> {
        match control::call(RequestKind::Kill { pid, signal: sig as u32 }) {
            Ok(Reply::Done) => Ok(0),
            Ok(Reply::Error { errno }) => Err(Errno::from_raw(errno).unwrap_or(Errno::ESRCH)),
            Ok(_) => Err(Errno::EIO),
            Err(Errno::ENOSYS) => Err(Errno::ESRCH),
            Err(e) => Err(e),
        }
    }

    /// `setpgid(pid, pgid)` decided by the host (`pid` 0 is this process, `pgid` 0 is `pid`);
    /// on success this VM's copy of the group (its own, or its child's) changes. `ENOSYS`
    /// without a host.
    pub fn ask_setpgid(pid: u64, pgid: u64) -> Result<u64> {
        let (Ok(target), Ok(group_id)) = (Pid::try_from(pid), Pid::try_from(pgid)) else { return Err(Errno::ESRCH) };
        match control::call(RequestKind::SetPgid { pid: target, pgid: group_id })? {
            Reply::Done => {}
            Reply::Error { errno } => return Err(Errno::from_raw(errno).unwrap_or(Errno::EPERM)),
            _ => return Err(Errno::EIO),
        }
        let me = super::pid();
        let target = if pid == 0 { me } else { pid };
        let pgid = if pgid == 0 { target } else { pgid };
        if target == me {
            set_group(pgid);
        } else {
            set_child_group(target as Pid, pgid, false);
        }
        Ok(0)
    }

    /// `setsid()` decided by the host: this process leads a new session and group. `ENOSYS`
    /// without a host.
    pub fn ask_setsid() -> Result<u64> {
        match control::call(RequestKind::SetSid)? {
            Reply::Done => {
                let me = super::pid();
                set_session(me);
                Ok(me)
            }
            Reply::Error { errno } => Err(Errno::from_raw(errno).unwrap_or(Errno::EPERM)),
            _ => Err(Errno::EIO),
        }
    }

    /// Tells the host this process called `execve` (its parent can no longer move it to
    /// another group). Quiet without a host.
    pub fn report_exec() {
        match control::call(RequestKind::Exec) {
            Ok(_) | Err(Errno::ENOSYS) => {}
            Err(e) => log::warn!("posix-shim: cannot tell the host of this execve ({e})"),
        }
    }

    /// Tells the host this process runs from the file `dev`/`ino` now, so that no other
    /// process opens it for writing (`ETXTBSY`); returns once the host has told them. Quiet
    /// without a host.
    pub fn report_text(dev: u64, ino: u64) {
        match control::call(RequestKind::Text { text: FileId { dev, ino } }) {
            Ok(_) | Err(Errno::ENOSYS) => {}
            Err(e) => log::warn!("posix-shim: cannot tell the host which file this program runs from ({e})"),
        }
    }

    /// The parent's side of `vfork` (and `clone` with `CLONE_VFORK`): returns once child
    /// `child` runs a program of its own (`execve`) or has ended, as Linux holds a `vfork`
    /// parent. The child is a copy, so the wait protects no memory; it keeps the order
    /// programs rely on (by the time `posix_spawn` returns, the child runs the new program: its
    /// file refuses writers everywhere).
    pub fn wait_for_vfork_child(child: u64) {
        let Ok(child) = Pid::try_from(child) else { return };
        match control::call(RequestKind::VforkWait { child }) {
            Ok(_) | Err(Errno::ENOSYS) => {}
            Err(e) => log::warn!("posix-shim: cannot wait for vfork child {child} ({e})"),
        }
    }

    /// Passes a change of the mount table on to the other processes; returns once the host
    /// has passed it on. False when it is too long for a message (it then stays this VM's).
    pub fn report_namespace_change(change: &[u8]) -> bool {
        let Some(change) = NamespaceChange::new(change) else { return false };
        match control::call(RequestKind::Namespace { change }) {
            Ok(_) | Err(Errno::ENOSYS) => {}
            Err(e) => log::warn!("posix-shim: cannot pass a mount table change on to the other processes ({e})"),
        }
        true
    }

    /// Another process's group (or, with `session`, its session), from the host.
    pub fn ask_id_of(pid: u64, session: bool) -> Result<u64> {
        let Ok(pid) = Pid::try_from(pid) else { return Err(Errno::ESRCH) };
        let request = if session { RequestKind::GetSid { pid } } else { RequestKind::GetPgid { pid } };
        match control::call(request) {
            Ok(Reply::Id { id }) => Ok(u64::from(id)),
            Ok(Reply::Error { errno }) => Err(Errno::from_raw(errno).unwrap_or(Errno::ESRCH)),
            Ok(_) => Err(Errno::EIO),
            Err(Errno::ENOSYS) => Err(Errno::ESRCH),
            Err(e) => Err(e),
        }
    }

    /// Tells the host this process ends with wait status `status` (just before power-off), so
    /// its parent hears how it ended. Quiet without a host.
    pub fn report_exit(status: u32) {
        if let Err(e) = control::send(RequestKind::Exit { status }) {
            if e != Errno::ENOSYS {
                log::warn!("posix-shim: cannot tell the host this process's exit status ({e})");
            }
        }
    }
}
