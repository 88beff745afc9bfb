//! What `/proc/self` shows (feature `fs`): the process's descriptors, program, arguments,
//! credentials, signals and memory, registered with libos's procfs
//! ([`libos::fs::vfs::procfs::ProcessView`]) as the program starts. Everything is read when a
//! file is read, except the arguments and environment, which are those the program started
//! with (Linux reads them from the program's memory, where it may have changed them).

use crate::fd::{self, Object};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos::fs::vfs::procfs::{Descriptor, Mapping, ProcessView, Status};
use libos::sync::Mutex;
use libos::Result;

/// The program as it started (the first one, or the one `execve` loaded).
struct Started {
    executable: String,
    /// `comm`: the file name it was started by (`ls` for `/bin/ls`, a symlink to busybox),
    /// 15 bytes at most.
    name: String,
    /// Where its initial stack is (`[stack]` in `maps`, which glibc's `pthread_getattr_np`
    /// reads for the main thread).
    stack: (u64, u64),
    command_line: Vec<u8>,
    environment: Vec<u8>,
}

static STARTED: Mutex<Option<Started>> = Mutex::new(None);
/// When the process started (nanoseconds since boot; `execve` keeps it, as on Linux).
static START_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the program that starts now from `executable` (its path; the image's own program
/// has none, and shows as `/NAME`) with its initial stack in `stack`, and registers the view
/// with procfs.
pub fn program_started(executable: &str, stack: (u64, u64), args: &[&str], env: &[&str]) {
    let joined = |strings: &[&str]| {
        let mut bytes = Vec::new();
        for string in strings {
            bytes.extend_from_slice(string.as_bytes());
            bytes.push(0);
        }
        bytes
    };
    let file_name = executable.rsplit('/').next().unwrap_or_default();
    let mut name_len = file_name.len().min(15);
    while !file_name.is_char_boundary(name_len) {
        name_len -= 1;
    }
    let name = String::from(&file_name[..name_len]);
    // The file's own path, symlinks resolved (`/bin/ls` -> `/bin/busybox`, as Linux shows
    // it); the image's program, which has no file, by its name.
    let opened = libos::fs::vfs().and_then(|vfs| vfs.open(executable, libos::fs::OpenFlags::PATH, 0));
    let executable = match opened.ok().and_then(|file| file.file_ref()).and_then(|r| r.path().ok()) {
        Some(path) => path,
        None if executable.starts_with('/') => String::from(executable),
        None => alloc::format!("/{executable}"),
    };
    *STARTED.lock() = Some(Started { executable, name, stack, command_line: joined(args), environment: joined(env) });
    let now = libos::time::Instant::now().as_nanos();
    let _ = START_NS.compare_exchange(0, now, core::sync::atomic::Ordering::Relaxed, core::sync::atomic::Ordering::Relaxed);
    libos::fs::set_process_view(Arc::new(View));
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
        STARTED.lock().as_ref().map(|s| s.executable.clone()).unwrap_or_default()
    }

    fn current_dir(&self) -> Result<String> {
        libos::fs::vfs()?.current_dir()
    }

    fn command_line(&self) -> Vec<u8> {
        STARTED.lock().as_ref().map(|s| s.command_line.clone()).unwrap_or_default()
    }

    fn environment(&self) -> Vec<u8> {
        STARTED.lock().as_ref().map(|s| s.environment.clone()).unwrap_or_default()
    }

    fn status(&self) -> Status {
        let creds = libos::fs::vfs().map(|vfs| vfs.credentials()).unwrap_or_default();
        let (signals, threads) = crate::signal::sets_and_threads();
        let heap = libos::heap_stats();
        Status {
            name: STARTED.lock().as_ref().map(|s| s.name.clone()).unwrap_or_default(),
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
