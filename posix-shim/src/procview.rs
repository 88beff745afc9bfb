//! What `/proc/self` shows (feature `fs`): the process's descriptors, program, arguments,
//! credentials, signals and memory, registered with libos's procfs
//! ([`libos::fs::vfs::procfs::ProcessView`]) as the program starts. Everything is read when a
//! file is read, the arguments and environment too: from the program's initial stack, as
//! Linux reads them from the program's memory (where it may have changed them).
//!
//! The start records only what it already has (no path walk, no copies): the first,
//! eager version crashed fsx on aarch64 for a reason not found (see the note in
//! `start_program`; a plain delay is not it).

use crate::fd::{self, Object};
use crate::user;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::fs::vfs::procfs::{Descriptor, Mapping, ProcessView, Status};
use libos::sync::Mutex;
use libos::Result;

/// The program as it started (the first one, or the one `execve` loaded).
struct Started {
    /// The path it was started by (`/bin/ls`, a symlink to busybox, gives `comm` `ls`).
    path: String,
    /// Its file, when it had to be found at the start (see [`program_started`]); else
    /// `path` is resolved when `exe` is read.
    file: Option<String>,
    /// Where its stack is (`[stack]` in `maps`, which glibc's `pthread_getattr_np` reads for
    /// the main thread).
    stack: (u64, u64),
    /// Its initial stack pointer: `argc`, then the `argv` and `envp` arrays.
    initial_sp: u64,
}

static STARTED: Mutex<Option<Started>> = Mutex::new(None);
/// When the process started (nanoseconds since boot; `execve` keeps it, as on Linux).
static START_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the program that starts now from `path` (the image's own program has none: its
/// name), running on `stack` from `initial_sp`, and registers the view with procfs.
pub fn program_started(path: String, stack: (u64, u64), initial_sp: u64) {
    // A path through /proc names the program before this one (busybox runs its applets as
    // /proc/self/exe), a relative one depends on the current directory: those are resolved
    // now. Other paths are resolved when read: no walk before the first instruction.
    let file = (path.starts_with("/proc/") || !path.starts_with('/')).then(|| resolve(&path));
    *STARTED.lock() = Some(Started { path, file, stack, initial_sp });
    let now = libos::time::Instant::now().as_nanos();
    let _ = START_NS.compare_exchange(0, now, core::sync::atomic::Ordering::Relaxed, core::sync::atomic::Ordering::Relaxed);
    libos::fs::set_process_view(Arc::new(View));
}

/// The strings of the NULL-terminated pointer array at `array` (in program memory), each
/// followed by a NUL byte; stops at the first bad pointer or string (the program may have
/// changed its initial stack).
fn strings_at(mut array: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buffer = user::StrBuffer::new();
    loop {
        // SAFETY: checked by `user::read`; the array lies in the program's initial stack.
        let Ok(pointer) = (unsafe { user::read::<u64>(array) }) else { break };
        if pointer == 0 {
            break;
        }
        // SAFETY: checked by `c_string`; a string the program's argv or envp points at.
        let Ok(string) = (unsafe { user::c_string(pointer, STRING_MAX, &mut buffer) }) else { break };
        bytes.extend_from_slice(string.as_bytes());
        bytes.push(0);
        let Some(next) = array.checked_add(8) else { break };
        array = next;
    }
    bytes
}

/// The longest argument or environment string (Linux's `MAX_ARG_STRLEN`).
const STRING_MAX: usize = 32 * 4096;

/// `argv` (`environment`: `envp`) of the program as it started, from its initial stack.
fn initial_strings(environment: bool) -> Vec<u8> {
    let Some(sp) = STARTED.lock().as_ref().map(|s| s.initial_sp) else { return Vec::new() };
    // SAFETY: checked by `user::read`: `argc` at the initial stack pointer.
    let Ok(argc) = (unsafe { user::read::<u64>(sp) }) else { return Vec::new() };
    let argv = sp.saturating_add(8);
    if !environment {
        return strings_at(argv);
    }
    // `argc` is whatever the program left there: an absurd one reads nothing, never wraps.
    match argc.checked_add(1).and_then(|n| n.checked_mul(8)).and_then(|skip| argv.checked_add(skip)) {
        Some(envp) => strings_at(envp),
        None => Vec::new(),
    }
}

/// Set while [`resolve`] walks: a path that leads back to `/proc/self/exe` (a symlink to
/// it) reads its raw text then, so the walk ends with `ELOOP` instead of recursing.
static RESOLVING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The file `path` names, symlinks resolved (`/bin/ls` -> `/bin/busybox`, as Linux shows
/// `exe`); the image's program, which has no file, by its name (`/NAME`).
fn resolve(path: &str) -> String {
    use core::sync::atomic::Ordering;
    let fallback = || if path.starts_with('/') { String::from(path) } else { alloc::format!("/{path}") };
    if RESOLVING.swap(true, Ordering::Acquire) {
        return fallback();
    }
    let opened = libos::fs::vfs().and_then(|vfs| vfs.open(path, libos::fs::OpenFlags::PATH, 0));
    let resolved = opened.ok().and_then(|file| file.file_ref()).and_then(|r| r.path().ok());
    RESOLVING.store(false, Ordering::Release);
    resolved.unwrap_or_else(fallback)
}

/// `comm` of a program started by `path`: its file name, at most 15 bytes.
fn comm(path: &str) -> String {
    let file_name = path.rsplit('/').next().unwrap_or_default();
    let mut len = file_name.len().min(15);
    while !file_name.is_char_boundary(len) {
        len -= 1;
    }
    String::from(&file_name[..len])
}

/// The view procfs asks.
struct View;

/// A number for an object, as Linux shows an inode number (its address: unique while it
/// lives, the same for both ends of a pipe).
fn object_id<T>(object: *const T) -> u64 {
    object as usize as u64 / 16
}

impl ProcessView for View {
    fn pid(&self) -> u32 {
        crate::process::pid() as u32
    }

    fn descriptors(&self) -> Vec<u32> {
        fd::numbers()
    }

    fn descriptor(&self, fd: u32) -> Option<Descriptor> {
        let object = fd::get(u64::from(fd)).ok()?;
        Some(match &*object {
            Object::Console => Descriptor::Console,
            Object::Pipe(end) => Descriptor::Pipe(object_id(Arc::as_ptr(end.pipe()))),
            Object::Event(_) => Descriptor::Anonymous("[eventfd]"),
            Object::Timer(_) => Descriptor::Anonymous("[timerfd]"),
            Object::Epoll(_) => Descriptor::Anonymous("[eventpoll]"),
            Object::Socket(_) => Descriptor::Socket(object_id(Arc::as_ptr(&object))),
            Object::File(file) => file.file_ref().map_or(Descriptor::Anonymous("[file]"), Descriptor::File),
        })
    }

    fn executable(&self) -> String {
        let (path, file) = STARTED.lock().as_ref().map(|s| (s.path.clone(), s.file.clone())).unwrap_or_default();
        file.unwrap_or_else(|| resolve(&path))
    }

    fn current_dir(&self) -> Result<String> {
        libos::fs::vfs()?.current_dir()
    }

    fn command_line(&self) -> Vec<u8> {
        initial_strings(false)
    }

    fn environment(&self) -> Vec<u8> {
        initial_strings(true)
    }

    fn status(&self) -> Status {
        let creds = libos::fs::vfs().map(|vfs| vfs.credentials()).unwrap_or_default();
        let (signals, threads) = crate::signal::sets_and_threads();
        let heap = libos::heap_stats();
        Status {
            name: STARTED.lock().as_ref().map(|s| comm(&s.path)).unwrap_or_default(),
            ppid: crate::process::parent() as u32,
            pgid: crate::process::group() as u32,
            sid: crate::process::session() as u32,
            uids: [creds.ruid, creds.euid, creds.suid, creds.fsuid],
            gids: [creds.rgid, creds.egid, creds.sgid, creds.fsgid],
            groups: creds.groups().to_vec(),
            capabilities: [creds.cap_inheritable, creds.cap_permitted, creds.cap_effective],
            umask: crate::dispatch::umask_value(),
            threads: threads.max(1),
            signals,
            // One program per VM: its memory is the kernel heap's.
            vm_bytes: heap.claimed,
            rss_bytes: heap.in_use,
            cpu_ns: crate::resources::cpu_time().as_nanos() as u64,
            start_ns: START_NS.load(core::sync::atomic::Ordering::Relaxed),
            cpus: crate::thread::process_cpus(),
        }
    }

    fn owner(&self) -> (u32, u32) {
        libos::fs::vfs().map_or((0, 0), |vfs| {
            let creds = vfs.credentials();
            (creds.euid, creds.egid)
        })
    }

    fn mappings(&self) -> Vec<Mapping> {
        #[cfg(feature = "elf")]
        let mut areas = crate::load::program_areas(&self.executable());
        #[cfg(not(feature = "elf"))]
        let mut areas = Vec::new();
        areas.extend(crate::mem::mappings());
        if let Some((start, end)) = STARTED.lock().as_ref().map(|s| s.stack) {
            areas.push(Mapping { start, end, read: true, write: true, name: String::from("[stack]"), ..Mapping::default() });
        }
        areas.sort_by_key(|area| area.start);
        areas
    }
}
